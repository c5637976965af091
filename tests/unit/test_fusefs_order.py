"""fuse/order.py: the claims that order conflicting changes, and the writers lock that the
resync's final pass takes to see no change applied but not yet handed over."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from node_agent.replication.fuse.order import WHOLE, OrderGate, WritersLock, whole

T = 5.0  # generous: only a broken lock makes a test wait this long


def started(fn: Callable[[], None]) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


def stays_blocked(done: threading.Event, for_s: float = 0.2) -> bool:
    return not done.wait(for_s)


def test_conflicting_claims_take_turns_and_disjoint_ones_do_not() -> None:
    gate = OrderGate()
    entered = {k: threading.Event() for k in ("overlap", "disjoint", "other", "whole")}
    release = threading.Event()

    def hold(key: str, *claim: tuple[str, int, int]) -> Callable[[], None]:
        def run() -> None:
            with gate.claim(*claim):
                entered[key].set()
                release.wait(T)

        return run

    with gate.claim(("f", 0, 100)):
        started(hold("overlap", ("f", 50, 100)))
        started(hold("disjoint", ("f", 100, 200)))  # half-open ranges: 100 is free
        started(hold("other", ("g", 0, 100)))
        started(hold("whole", whole("f")))  # a namespace op or truncate on f
        assert entered["disjoint"].wait(T) and entered["other"].wait(T)
        assert stays_blocked(entered["overlap"]) and not entered["whole"].is_set()
    assert entered["overlap"].wait(T)  # our claim ended: the overlapping one goes
    assert stays_blocked(entered["whole"], 0.1)  # still conflicts with the other writes
    release.set()
    assert entered["whole"].wait(T)
    assert whole("f") == ("f", 0, WHOLE)


def test_a_multi_path_claim_is_taken_at_once() -> None:
    """A rename claims both names together: two renames in opposite directions cannot
    each hold one name and wait for the other."""
    gate = OrderGate()
    done = []

    def rename(a: str, b: str) -> None:
        for _ in range(200):
            with gate.claim(whole(a), whole(b)):
                pass
        done.append(a)

    threads = [started(lambda: rename("x", "y")), started(lambda: rename("y", "x"))]
    for t in threads:
        t.join(T)
    assert sorted(done) == ["x", "y"] and gate.busy() == 0


def test_shared_holders_run_together() -> None:
    lock = WritersLock()
    inside = threading.Barrier(3, timeout=T)

    def writer() -> None:
        with lock.shared():
            inside.wait()  # all three inside at once, or the barrier breaks

    threads = [started(writer) for _ in range(3)]
    for t in threads:
        t.join(T)
    assert not inside.broken


def test_exclusive_waits_for_shared_and_holds_new_ones_back() -> None:
    lock = WritersLock()
    got_exclusive, late_writer_in, release_first = (threading.Event() for _ in range(3))
    first_in = threading.Event()
    order: list[str] = []

    def first_writer() -> None:
        with lock.shared():
            first_in.set()
            release_first.wait(T)
            order.append("first writer out")

    def pauser() -> None:
        with lock.exclusive():
            got_exclusive.set()
            order.append("paused")
            time.sleep(0.05)
            order.append("resumed")

    def late_writer() -> None:
        with lock.shared():
            late_writer_in.set()
            order.append("late writer")

    started(first_writer)
    assert first_in.wait(T)
    started(pauser)
    time.sleep(0.05)  # the pauser now waits for the first writer
    started(late_writer)
    # A writer arriving while the pauser waits must not get in before it (no starvation).
    assert stays_blocked(got_exclusive) and stays_blocked(late_writer_in, 0.05)
    release_first.set()
    assert got_exclusive.wait(T) and late_writer_in.wait(T)
    assert order == ["first writer out", "paused", "resumed", "late writer"]


def test_a_pause_sees_no_change_between_apply_and_hand_over() -> None:
    """The property the resync's final pass relies on, with many writers: every time the
    pause gets in, as many changes were handed over as were applied."""
    lock, gate = WritersLock(), OrderGate()
    counts = {"applied": 0, "handed": 0}
    mu = threading.Lock()
    stop = threading.Event()
    seen: list[tuple[int, int]] = []

    def writer(i: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            with gate.claim((f"f{i}", n, n + 1)), lock.shared():
                with mu:
                    counts["applied"] += 1
                time.sleep(0)  # let others run between the two steps
                with mu:
                    counts["handed"] += 1

    def pauser() -> None:
        for _ in range(50):
            with lock.exclusive(), mu:
                seen.append((counts["applied"], counts["handed"]))
            time.sleep(0.001)

    threads = [started(lambda i=i: writer(i)) for i in range(6)]
    try:
        pausing = started(pauser)
        pausing.join(2 * T)
        assert not pausing.is_alive(), f"the pause starved: {len(seen)} of 50 got in"
    finally:
        stop.set()
    for t in threads:
        t.join(T)
    assert all(a == h for a, h in seen), [s for s in seen if s[0] != s[1]][:3]
    assert seen[-1][0] > 0
