"""Ordering of replicated operations on the primary (used by fusefs).

``Replicator.replicate(op)`` both hands the operation over and waits for it to be safe,
so the FUSE layer cannot hold one global lock around "apply locally + hand over" without
serializing every round trip. Instead it holds a *claim* on the byte ranges an operation
touches, from before the local apply until ``replicate`` returns: conflicting operations
(same path, overlapping ranges; anything but a data write claims the whole path) are
applied locally and handed over strictly one after the other, while writes to disjoint
ranges or to other paths proceed in parallel.

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
