"""Waits of the kernel's writeback, off the request path (used by fusefs).

With the writeback cache the application's ``write()`` returned long ago; the kernel
flushes its dirty pages later, in WRITE requests no application waits for. Their
durability points are fsync, fdatasync, O_SYNC writes (an fsync of the range) and close
(FLUSH, after the kernel wrote the dirty pages back). So such a WRITE is applied locally
and handed to the replicator in order, and its reply goes back at once: ``Writeback``
waits for the replicator in one thread of its own, in order. A durability point calls
``barrier()``: everything handed over before it has been acknowledged (or held and then
released by the write gate) when it returns -- at once if that thread has settled it all
already, as it usually has by the time the durability point's own wait returned; the
first error since the last barrier (fenced, the bitmap could not be written) is raised
there -- the way the kernel reports a failed writeback at the next fsync. That turns a
stream of 1 MiB writebacks from "one round trip each, at most one per FUSE thread in
flight" into a pipeline bounded only by the sender's window.
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
        self._queue: queue.SimpleQueue[list[Wait] | None] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._added = self._settled = 0  # batches of waits handed in / settled (in order)
        self._error: tuple[int, OSError] | None = None  # (its batch, the first error)
        self._thread = threading.Thread(target=self._run, name=f"writeback:{name}", daemon=True)
        self._thread.start()

    def add(self, waits: list[Wait]) -> None:
        if waits:
            with self._cond:  # numbered in the order the thread takes them
                self._added += 1
                self._queue.put(waits)

    def barrier(self) -> None:
        """Block until everything added before is settled; raise its first error. No
        hand-off when the writeback thread has settled it already (the usual case at an
        fsync: its own wait covered the same ACKs)."""
        with self._cond:
            target = self._added
            while self._settled < target:
                self._cond.wait()
            if self._error is None or self._error[0] > target:
                return  # (an error of a later batch is for the next barrier)
            error, self._error = self._error[1], None
        raise error

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(5.0)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            error: OSError | None = None
            for wait in item:
                try:
                    wait()
                except OSError as e:
                    log.warning("writeback not acknowledged: %s", e)
                    error = error or e
                except Exception as e:  # never lose the thread: report at the barrier
                    log.exception("writeback wait failed")
                    error = error or OSError(5, f"writeback failed: {e}")
            with self._cond:
                self._settled += 1
                if error is not None and self._error is None:
                    self._error = (self._settled, error)
                self._cond.notify_all()
