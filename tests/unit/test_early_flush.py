"""Early writeback of a copy's dirty pages (node_agent/replication/local/early_flush.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node_agent.replication.local.early_flush import DirtyRanges, EarlyFlush, start_writeback

MiB = 1 << 20


def test_nothing_is_due_below_the_threshold() -> None:
    r = DirtyRanges(threshold=4 * MiB)
    assert [r.wrote(3, i * MiB, MiB) for i in range(3)] == [None, None, None]
    assert r.wrote(3, 3 * MiB, MiB) == (0, 4 * MiB)
    assert r.wrote(3, 4 * MiB, MiB) is None  # a new span starts after a flush


def test_the_span_covers_scattered_writes_and_fds_are_apart() -> None:
    r = DirtyRanges(threshold=2 * MiB)
    assert r.wrote(5, 10 * MiB, MiB) is None
    assert r.wrote(6, 0, MiB) is None  # another file: its own span
    assert r.wrote(5, 2 * MiB, MiB) == (2 * MiB, 9 * MiB)
    assert r.wrote(6, MiB, MiB) == (0, 2 * MiB)


def test_a_closed_fd_is_forgotten_and_empty_writes_count_for_nothing() -> None:
    r = DirtyRanges(threshold=2 * MiB)
    r.wrote(4, 0, MiB)
    r.forget(4)  # the number may come back for another file
    assert r.wrote(4, 100 * MiB, MiB) is None
    assert r.wrote(4, 0, 0) is None
    assert r.wrote(4, 101 * MiB, MiB) == (100 * MiB, 2 * MiB)


def test_a_bad_threshold_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="early flush threshold"):
        DirtyRanges(0)


@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 64), st.integers(0, 9)), max_size=60))
def test_every_written_byte_is_flushed_or_still_pending(writes: list[tuple[int, int, int]]) -> None:
    r = DirtyRanges(threshold=16)
    flushed: dict[int, list[tuple[int, int]]] = {}
    for fd, off, n in writes:
        due = r.wrote(fd, off, n)
        if due is not None:
            flushed.setdefault(fd, []).append((due[0], due[0] + due[1]))
    for fd, off, n in writes:
        if n == 0:
            continue
        spans = flushed.get(fd, []) + [(s.lo, s.hi) for f, s in r._spans.items() if f == fd]
        assert any(lo <= off and off + n <= hi for lo, hi in spans), (fd, off, n)


def test_the_driver_starts_writeback_of_due_spans() -> None:
    calls: list[tuple[int, int, int]] = []
    ef = EarlyFlush(threshold=2 * MiB, start=lambda *a: calls.append(a))
    ef.wrote(7, 0, MiB)
    assert calls == []
    ef.wrote(7, MiB, MiB)
    assert calls == [(7, 0, 2 * MiB)]
    ef.forget(7)


def test_start_writeback_changes_no_data_and_never_raises(tmp_path: Path) -> None:
    # The kernel's own call: starts I/O of dirty pages; the data is unchanged and still
    # cached (it is not a durability point: fsync stays one).
    path = tmp_path / "f"
    data = os.urandom(4 * MiB)
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        os.pwrite(fd, data, 0)
        start_writeback(fd, 0, len(data))
        start_writeback(-1, 0, 1)  # an error is left to the next fsync, never raised
        assert os.pread(fd, len(data), 0) == data
        os.fsync(fd)
    finally:
        os.close(fd)
