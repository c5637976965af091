"""Ordering of replicated operations on the primary (used by handover.py).

The FUSE layer applies each operation locally, then hands it over (``submit`` gives it
its place in the stream; the wait it returns blocks until it is safe). It holds a *claim*
on the byte ranges an operation touches from before the local apply until the hand-over
returns: conflicting operations (same path, overlapping ranges; anything but a data
write claims the whole path) are applied locally and handed over strictly one after the
other, in the same order on both sides. Writes to disjoint ranges or to other paths
proceed in parallel: their order does not change what either copy ends up holding. One
global lock around "apply + hand over" would also serialize every local ``pwrite``
(measured: 0.42x of local sequential throughput with it, 0.48x without, in A/B runs).
``WritersLock`` is held shared around the same span, so that the resync's final pass
can see a moment with no change applied but not yet handed over.

What keeps different paths consistent is the layers above us: the kernel VFS holds the
parent directory's lock across create/unlink/rename/mkdir/rmdir requests and the inode
lock across setattr and (non-writeback) writes, and libfuse's path tree lock keeps a
rename of ``a`` waiting while any request on ``a/...`` is still running.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

WHOLE = 1 << 63  # end of a claim on the whole path

Key = tuple[str, int, int]  # (relative path, start, end) -- half-open byte range


def whole(path: str) -> Key:
    return (path, 0, WHOLE)


class OrderGate:
    """Claims on (path, byte range); a claim waits while a conflicting one is held."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held: dict[str, list[tuple[int, int]]] = {}

    def _conflicts(self, keys: tuple[Key, ...]) -> bool:
        for path, start, end in keys:
            for s, e in self._held.get(path, ()):
                if start < e and s < end:
                    return True
        return False

    @contextmanager
    def claim(self, *keys: Key) -> Iterator[None]:
        # All keys are taken at once (never one by one), so two multi-path claims can
        # never deadlock each other.
        with self._cond:
            while self._conflicts(keys):
                self._cond.wait()
            for path, start, end in keys:
                self._held.setdefault(path, []).append((start, end))
        try:
            yield
        finally:
            with self._cond:
                for path, start, end in keys:
                    ranges = self._held[path]
                    ranges.remove((start, end))
                    if not ranges:
                        del self._held[path]
                self._cond.notify_all()

    def busy(self) -> int:
        """Number of paths with a claim held (for tests)."""
        with self._cond:
            return len(self._held)


class WritersLock:
    """Shared by every change from its local apply until it is handed over; exclusive
    for whoever must see no change in between (the resync's final pass). A waiting
    exclusive request holds new shared ones back, so writers cannot starve it. Take a
    claim on the OrderGate *before* the shared lock: a thread holding shared must never
    wait for a claim (a blocked exclusive request would then deadlock both)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0  # exclusive requests

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive or self._waiting:
                self._cond.wait()
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                if not self._shared:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            try:
                while self._exclusive or self._shared:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()
