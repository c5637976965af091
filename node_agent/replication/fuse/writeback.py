"""Waits of the kernel's writeback, off the request path (used by fusefs).

With the writeback cache the application's ``write()`` returned long ago; the kernel
flushes its dirty pages later, in WRITE requests no application waits for. Their
durability points are fsync, fdatasync, O_SYNC writes (an fsync of the range) and close
(FLUSH, after the kernel wrote the dirty pages back). So such a WRITE is applied locally
and handed to the replicator in order, and its reply goes back at once; its waits are
handed in here (``add``) and settled in order, by whoever comes first:

- a durability point's ``barrier()`` settles everything added before it, in its own
  thread -- usually at no cost, since its own wait covered the same ACKs (the kernel sends
  a page's WRITE, then the FSYNC that settles it) -- and raises the first error among
  them (fenced, the bitmap could not be written), the way the kernel reports a failed
  writeback at the next fsync;
- otherwise this object's thread, once a batch is DELAY_S old. It is not woken for each
  batch: while writebacks come it ticks every DELAY_S, and sleeps once idle.

Neither waits for a round trip per WRITE: a stream of 1 MiB writebacks is a pipeline
bounded only by the sender's window. Running a wait also sends its op if it still sits
in the sender's outbox (stream/sender.py, ``lazy``), so a WRITE, its timestamps and the
FSYNC after them leave in one piece.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)
Wait = Callable[[], None]
# A batch's age before the thread settles it (a durability point usually did first). Not on
# any waiting path: it bounds how long a lone writeback (no fsync after it) may sit in the
# sender's outbox, and what a busy mount costs in wake-ups (at most 1/DELAY_S a second).
DELAY_S = 0.01
IDLE_TICKS = 10  # ticks without a batch before the thread sleeps until add() wakes it


class Writeback:
    def __init__(self, name: str, delay_s: float = DELAY_S) -> None:
        self._lock = threading.Lock()
        self._settled_cv = threading.Condition(self._lock)  # barriers waiting for a runner
        self._work_cv = threading.Condition(self._lock)  # the thread's sleep
        self._batches: deque[tuple[float, list[Wait]]] = deque()  # (added at, waits)
        self._added = self._settled = 0  # batches handed in / settled (numbered in order)
        self._running = False  # a thread runs a batch's waits: one at a time, in order
        self._errors: list[tuple[int, OSError]] = []  # (batch, its first error), unreported
        self._idle = False  # the thread sleeps until add() wakes it
        self._closed = False
        self._delay = delay_s
        self._thread = threading.Thread(target=self._run, name=f"writeback:{name}", daemon=True)
        self._thread.start()

    def add(self, waits: list[Wait]) -> None:
        if waits:
            with self._lock:
                self._added += 1
                self._batches.append((time.monotonic(), waits))
                if self._idle:
                    self._idle = False
                    self._work_cv.notify()

    def mark(self) -> int:
        """Where the batches added so far end: a barrier up to it waits for no later one."""
        with self._lock:
            return self._added

    def barrier(self, upto: int | None = None) -> None:
        """Settle everything added before (or up to ``mark()``'s ``upto``), here; raise
        the first error among them (once: a later barrier reports a later one)."""
        with self._lock:
            target = self._added if upto is None else upto
            self._settle_locked(target)
            mine = [e for n, e in self._errors if n <= target]
            if not mine:
                return
            self._errors = [(n, e) for n, e in self._errors if n > target]
        raise mine[0]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._work_cv.notify()
        self._thread.join(5.0)

    def _settle_locked(self, target: int) -> None:
        """Settle batches up to number ``target``: run them here, or wait for the thread
        running one (the lock is held on entry and exit, released while a wait runs)."""
        while self._settled < target:
            if self._running:
                self._settled_cv.wait()
                continue
            _, waits = self._batches.popleft()
            self._running = True
            self._lock.release()
            try:
                error = _run_waits(waits)
            finally:
                self._lock.acquire()
                self._running = False
            self._settled += 1
            if error is not None:
                self._errors.append((self._settled, error))
            self._settled_cv.notify_all()

    def _run(self) -> None:
        ticks = 0
        with self._lock:
            while not self._closed:
                if not self._batches:
                    ticks += 1
                    if ticks > IDLE_TICKS:
                        self._idle, ticks = True, 0
                        self._work_cv.wait_for(lambda: not self._idle or self._closed)
                    else:
                        self._work_cv.wait(self._delay)
                    continue
                ticks = 0
                now = time.monotonic()
                due = 0
                for t, _ in self._batches:  # in the order added: the due ones come first
                    if t + self._delay > now:
                        break
                    due += 1
                if not due:
                    self._work_cv.wait(self._batches[0][0] + self._delay - now)
                    continue
                self._settle_locked(self._added - (len(self._batches) - due))
            self._settle_locked(self._added)


def _run_waits(waits: list[Wait]) -> OSError | None:
    error: OSError | None = None
    for wait in waits:
        try:
            wait()
        except OSError as e:
            log.warning("writeback not acknowledged: %s", e)
            error = error or e
        except Exception as e:  # never lose the thread: report at the barrier
            log.exception("writeback wait failed")
            error = error or OSError(5, f"writeback failed: {e}")
    return error
