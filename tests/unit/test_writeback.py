"""The waits of the kernel's writebacks (node_agent/replication/fuse/writeback.py): a
barrier returns once everything handed in before it is settled, and reports the first
error among those -- once."""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable, Iterator

import pytest

from node_agent.replication.fuse.writeback import Writeback


@pytest.fixture
def wb() -> Iterator[Writeback]:
    w = Writeback("test")
    yield w
    w.close()


def blocked() -> tuple[threading.Event, Callable[[], None]]:
    release = threading.Event()
    return release, lambda: release.wait(10) or None


def fails(code: int) -> Callable[[], None]:
    def wait() -> None:
        raise OSError(code, "not acknowledged")

    return wait


def in_thread(fn: Callable[[], None]) -> tuple[threading.Thread, list[BaseException | None]]:
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            fn()
            outcome.append(None)
        except BaseException as e:
            outcome.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, outcome


def test_a_barrier_waits_for_what_was_handed_in_before_it(wb: Writeback) -> None:
    wb.barrier()  # nothing yet: returns at once
    release, wait = blocked()
    wb.add([wait])
    t, outcome = in_thread(wb.barrier)
    t.join(0.2)
    assert t.is_alive()
    release.set()
    t.join(10)
    assert outcome == [None]


def test_the_first_error_is_raised_once(wb: Writeback) -> None:
    wb.add([fails(errno.EIO), fails(errno.ENOSPC)])
    with pytest.raises(OSError) as ei:
        wb.barrier()
    assert ei.value.errno == errno.EIO
    wb.barrier()  # reported: not again


def test_an_error_after_the_barrier_is_for_the_next_one(wb: Writeback) -> None:
    release, wait = blocked()
    wb.add([wait])
    t, outcome = in_thread(wb.barrier)
    t.join(0.2)
    wb.add([fails(errno.EIO)])  # handed in after the barrier began
    release.set()
    t.join(10)
    assert outcome == [None]
    with pytest.raises(OSError):
        wb.barrier()


def test_a_barrier_settles_in_its_own_thread_without_waking_the_writeback_thread() -> None:
    wb = Writeback("test", delay_s=30)  # the thread would settle it only after 30 s
    try:
        ran: list[threading.Thread] = []
        wb.add([lambda: ran.append(threading.current_thread())])
        wb.barrier()
        assert ran == [threading.current_thread()]
    finally:
        wb.close()


def test_the_thread_settles_what_no_barrier_comes_for(wb: Writeback) -> None:
    settled = threading.Event()
    wb.add([settled.set])
    assert settled.wait(10)


def test_close_settles_everything_left() -> None:
    wb = Writeback("test", delay_s=30)
    ran: list[int] = []
    wb.add([lambda: ran.append(1)])
    wb.add([lambda: ran.append(2)])
    wb.close()
    assert ran == [1, 2]


def test_every_error_is_reported_by_the_first_barrier_that_covers_it(wb: Writeback) -> None:
    wb.add([fails(errno.EIO)])
    wb.add([lambda: None])
    upto = wb.mark()
    wb.add([fails(errno.ENOSPC)])  # fails too, before any barrier
    with pytest.raises(OSError) as first:
        wb.barrier(upto)
    with pytest.raises(OSError) as second:  # the later failure was not swallowed
        wb.barrier()
    assert (first.value.errno, second.value.errno) == (errno.EIO, errno.ENOSPC)
    wb.barrier()


def test_a_barrier_up_to_a_mark_does_not_wait_for_later_batches(wb: Writeback) -> None:
    wb.add([lambda: None])
    upto = wb.mark()
    release, wait = blocked()
    wb.add([wait])  # another file's writeback, handed over after the mark
    t, outcome = in_thread(lambda: wb.barrier(upto))
    t.join(5)
    assert outcome == [None]  # returned while the later batch is still blocked
    release.set()
    wb.barrier()
