"""Start writing a copy's dirty pages to its disk as they accumulate, not at fsync.

Why: both copies are files in a page cache. A local application's fsync flushes its
cache in one go; a replicated one first waits for the whole stream to reach the
secondary and only then for the same flush, one after the other. A block device
(DRBD) writes to the disk as data arrives, so the two overlap. ``sync_file_range``
with ``SYNC_FILE_RANGE_WRITE`` only *starts* writeback of a range: it is never a
durability point (fsync still is), it does not drop the cache, and a failure here is
reported again by the fsync that follows, so it is ignored.

``DirtyRanges`` decides (pure); ``EarlyFlush`` calls the kernel.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

from node_agent.replication.local.syscalls import SYNC_FILE_RANGE_WRITE, sync_file_range

DEFAULT_THRESHOLD = 8 << 20  # large enough for big sequential I/O, small for the cache


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing [offset, offset+length) of ``fd`` (no waiting
    for the I/O to complete). Errors are left to the next fsync (see module doc)."""
    with contextlib.suppress(OSError):
        sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)


@dataclass
class _Span:
    lo: int
    hi: int
    dirty: int  # bytes written since the last flush (overlaps counted again)


class DirtyRanges:
    """Per fd, the span written since its last flush; a span is due once ``threshold``
    bytes were written into it."""

    def __init__(self, threshold: int = DEFAULT_THRESHOLD) -> None:
        if threshold <= 0:
            raise ValueError(f"early flush threshold must be positive, not {threshold}")
        self.threshold = threshold
        self._spans: dict[int, _Span] = {}

    def wrote(self, fd: int, offset: int, length: int) -> tuple[int, int] | None:
        """Record a write; (offset, length) to flush now, or None."""
        if length <= 0:
            return None
        end = offset + length
        span = self._spans.get(fd)
        if span is None:
            span = self._spans[fd] = _Span(offset, end, 0)
        span.lo, span.hi = min(span.lo, offset), max(span.hi, end)
        span.dirty += length
        if span.dirty < self.threshold:
            return None
        del self._spans[fd]
        return span.lo, span.hi - span.lo

    def forget(self, fd: int) -> None:
        """``fd`` is closed (its number may come back for another file)."""
        self._spans.pop(fd, None)


class EarlyFlush:
    """Thread-safe driver: record writes, start writeback of due spans outside the lock."""

    def __init__(
        self, threshold: int = DEFAULT_THRESHOLD,
        start: Callable[[int, int, int], None] | None = None,
    ) -> None:  # fmt: skip
        self._ranges = DirtyRanges(threshold)
        self._start = start or start_writeback
        self._lock = threading.Lock()

    def wrote(self, fd: int, offset: int, length: int) -> None:
        with self._lock:
            due = self._ranges.wrote(fd, offset, length)
        if due is not None:
            self._start(fd, *due)

    def forget(self, fd: int) -> None:
        with self._lock:
            self._ranges.forget(fd)
