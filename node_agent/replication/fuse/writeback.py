"""Waits of the kernel's writeback, off the request path (used by fusefs).

With the writeback cache the application's ``write()`` returned long ago; the kernel
flushes its dirty pages later, in WRITE requests no application waits for. Their
durability points are fsync, fdatasync, O_SYNC writes (an fsync of the range) and close
(FLUSH, after the kernel wrote the dirty pages back). So such a WRITE is applied locally
and handed to the replicator in order, and its reply goes back at once: ``Writeback``
waits for the replicator in one thread of its own, in order. A durability point calls
``barrier()``: everything handed over before it has been acknowledged (or held and then
released by the write gate) when it returns; the first error since the last barrier
(fenced, the bitmap could not be written) is raised there -- the way the kernel reports a
failed writeback at the next fsync. That turns a stream of 1 MiB writebacks from "one
round trip each, at most one per FUSE thread in flight" into a pipeline bounded only by
the sender's window.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)
Wait = Callable[[], None]


class Writeback:
    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[list[Wait] | threading.Event | None] = queue.SimpleQueue()
        self._error: OSError | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"writeback:{name}", daemon=True)
        self._thread.start()

    def add(self, waits: list[Wait]) -> None:
        if waits:
            self._queue.put(waits)

    def barrier(self) -> None:
        """Block until everything added before is settled; raise its first error."""
        done = threading.Event()
        self._queue.put(done)
        done.wait()
        with self._lock:
            error, self._error = self._error, None
        if error is not None:
            raise error

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(5.0)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if isinstance(item, threading.Event):
                item.set()
                continue
            for wait in item:
                try:
                    wait()
                except OSError as e:
                    log.warning("writeback not acknowledged: %s", e)
                    with self._lock:
                        self._error = self._error or e
                except Exception as e:  # never lose the thread: report at the barrier
                    log.exception("writeback wait failed")
                    with self._lock:
                        self._error = self._error or OSError(5, f"writeback failed: {e}")
