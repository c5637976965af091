"""PrimaryReplicator modes and the ResyncTracker rules, with a fake stream (no sockets).

The bitmap and the activity log are the real, persistent ones (in tmp_path).
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from node_agent.replication import ops
from node_agent.replication.resync.session import Pacer
from node_agent.replication.resync.tracker import ResyncTracker
from node_agent.replication.roles.primary import Mode, PrimaryReplicator, StreamBreak
from node_agent.replication.stream.sender import NotAcknowledged, SenderState
from node_agent.replication.tracking.activity_log import ActivityLog
from node_agent.replication.tracking.bitmap import ZoneBitmap
from node_agent.replication.tracking.peer_doubt import PeerDoubt
from node_agent.replication.tracking.zones import Change, ChangeSet, changeset_ops

ZS = 1 << 20


def w(path: str, zone: int, n: int = 10) -> ops.Write:
    return ops.Write(path, zone * ZS + 5, b"x" * n)


class FakeSender:
    """enqueue() like StreamSender: ops wait until ack(); fail() like a lost stream."""

    def __init__(self, on_failure: Callable, fallback: Callable) -> None:
        self.on_failure, self.fallback = on_failure, fallback
        self.state = SenderState.RUNNING
        self.sent: list[ops.Op] = []
        self._events: list[threading.Event] = []
        self._failed_ops: list[bool] = []
        self.auto_ack = False

    def enqueue(self, op: ops.Op, inline: bool = True, lazy: bool = False) -> Callable[[], None]:
        if self.state is not SenderState.RUNNING:
            self.fallback(op)
            return self._unacked
        ev = threading.Event()
        self.sent.append(op)
        self._events.append(ev)
        self._failed_ops.append(False)
        if self.auto_ack:
            ev.set()
        i = len(self._events) - 1

        def wait() -> None:
            ev.wait(10) or pytest.fail("never acknowledged")
            if self._failed_ops[i]:
                self._unacked()

        return wait

    def _unacked(self) -> None:
        raise NotAcknowledged("fake stream failed")

    def ack(self) -> None:
        for ev in self._events:
            ev.set()

    def fail(self, reason: str) -> None:
        self.state = SenderState.FAILED
        unacked = [op for op, ev in zip(self.sent, self._events, strict=True) if not ev.is_set()]
        self._failed_ops = [not ev.is_set() for ev in self._events]
        self.on_failure(reason, unacked)  # before any waiter is released
        self.ack()

    def close(self, timeout_s: float | None = None) -> None:
        self.state = SenderState.CLOSED


class Rig:
    def __init__(self, tmp: Path) -> None:
        self.bitmap = ZoneBitmap(tmp / "bitmap")
        self.activity = ActivityLog(tmp / "al")
        self.doubt = PeerDoubt(tmp / "doubt.json", ZS)
        self.failures: list[tuple[str, Mode, str]] = []
        self.primary = PrimaryReplicator(self.bitmap, self.activity, self._failed, self.doubt)
        self.failed = threading.Event()

    def _failed(self, brk: StreamBreak) -> None:
        self.failures.append((brk.reason, brk.old, brk.hold))
        self.failed.set()

    def sender(self) -> FakeSender:
        return self.primary.make_sender(FakeSender)  # type: ignore[arg-type]

    def dirty(self, path: str, zone: int) -> bool:
        return self.bitmap.changes().is_dirty(path, zone)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.bitmap.close()
    r.activity.close()


def in_thread(fn: Callable[[], object]) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


def test_track_marks_durably_and_sends_nothing(rig: Rig, tmp_path: Path) -> None:
    rig.primary.submit(w("0/a", 3))()
    rig.primary.submit(ops.Create("0/b", 0o100644))()
    again = ZoneBitmap(tmp_path / "bitmap").load()  # what survives a crash
    assert again.is_dirty("0/a", 3) and again.namespace_dirty("0/b")
    assert rig.primary.mode is Mode.TRACK


def test_replicate_returns_only_after_the_ack(rig: Rig) -> None:
    s = rig.sender()
    rig.primary.connecting(5)
    assert rig.primary.replicate_via(s, "g1")  # type: ignore[arg-type]
    wait = rig.primary.submit(w("0/a", 7))
    assert s.sent == [w("0/a", 7)] and rig.activity.active().is_dirty("0/a", 7)
    t = in_thread(wait)
    t.join(0.2)
    assert t.is_alive()  # no ACK yet
    s.ack()
    t.join(5)
    assert not t.is_alive() and not rig.dirty("0/a", 7)


def replicating(rig: Rig) -> FakeSender:
    s = rig.sender()
    assert rig.primary.connecting(5)
    assert rig.primary.replicate_via(s, "g1")  # type: ignore[arg-type]
    return s


def test_stream_failure_holds_unacked_writes_until_the_gate_opens(rig: Rig) -> None:
    s = replicating(rig)
    rig.primary.peer_kernel = "k1"
    rig.primary.submit(w("0/old", 1))
    s.ack()  # acknowledged, but its zone is still active in the activity log
    seen: list[bool] = []
    wait = rig.primary.submit(w("0/a", 2))

    def app() -> None:
        wait()
        seen.append(rig.dirty("0/a", 2))  # tracked by the time the write returns

    t = in_thread(app)
    s.fail("connection lost")
    assert rig.failed.wait(5)
    [(reason, old, hold)] = rig.failures
    assert (reason, old) == ("connection lost", Mode.REPLICATE) and hold
    assert rig.primary.mode is Mode.HELD and rig.primary.hold_token == hold
    t.join(0.3)
    assert t.is_alive() and rig.dirty("0/a", 2)  # held: tracked, not acknowledged
    held_new = in_thread(rig.primary.submit(w("0/b", 4)))  # later writes wait too
    held_new.join(0.2)
    assert held_new.is_alive() and rig.dirty("0/b", 4)
    deadline = time.monotonic() + 5  # both writers are counted as held (the metrics)
    while rig.primary.held_writes != 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rig.primary.held_writes == 2
    # The zone the peer applied is in doubt (its machine may crash), not dirty.
    assert not rig.dirty("0/old", 1)
    assert rig.doubt.take("k2").is_dirty("0/old", 1) and rig.doubt.take("k1").is_empty()
    assert not rig.primary.resolve_hold("another break", True)
    assert rig.primary.resolve_hold(hold, True)
    t.join(5)
    held_new.join(5)
    assert seen == [True] and not held_new.is_alive() and rig.primary.mode is Mode.TRACK
    assert rig.primary.held_writes == 0
    assert s.sent[-1] == w("0/a", 2)


def test_fenced_writes_fail_with_eio_and_so_does_everything_after(rig: Rig) -> None:
    s = replicating(rig)
    wait = rig.primary.submit(w("0/a", 2))
    errors: list[OSError] = []

    def app() -> None:
        try:
            wait()
        except OSError as e:
            errors.append(e)

    t = in_thread(app)
    s.fail("no acknowledgement within 5 s")
    assert rig.failed.wait(5)
    assert rig.primary.resolve_hold(rig.failures[0][2], False)
    t.join(5)
    assert errors and errors[0].errno == errno.EIO and "fenced" in str(errors[0])
    assert rig.primary.mode is Mode.FENCED and rig.primary.directory(0).fenced
    with pytest.raises(OSError, match="fenced"):
        rig.primary.submit(w("0/c", 0))
    assert rig.dirty("0/a", 2) and rig.dirty("0/c", 0)  # the resync will undo them
    rig.primary.release()
    assert rig.primary.mode is Mode.FENCED  # until the next role
    rig.primary.reset(bound=False, connect_timeout_s=1)
    assert rig.primary.mode is Mode.TRACK


def test_release_fences_what_is_still_held(rig: Rig) -> None:
    s = replicating(rig)
    wait = rig.primary.submit(w("0/a", 2))
    s.fail("closed")
    assert rig.failed.wait(5) and rig.primary.mode is Mode.HELD
    rig.primary.release()
    with pytest.raises(OSError, match="fenced"):
        wait()


def test_a_dropped_sender_failing_later_changes_nothing(rig: Rig) -> None:
    s = rig.sender()
    rig.primary.start_resync(s)  # type: ignore[arg-type]
    brk = rig.primary.detach("peer gone")
    assert brk is not None and (brk.old, brk.sender, brk.hold) == (Mode.RESYNC, s, "")
    s.fail("closed")
    time.sleep(0.1)
    assert not rig.failures and rig.primary.mode is Mode.TRACK


def test_an_unbound_resync_failing_goes_track_and_its_waits_return(rig: Rig) -> None:
    s = rig.sender()
    tracker = rig.primary.start_resync(s)  # type: ignore[arg-type]
    tracker.install([], {}, lambda p: None, lambda: None)
    wait = rig.primary.submit(w("0/a", 1))
    s.fail("closed")
    wait()  # the peer is resynchronizing: it cannot serve, so this may be acknowledged
    assert rig.primary.mode is Mode.TRACK and rig.dirty("0/a", 1)
    assert rig.failed.wait(5) and rig.failures == [("closed", Mode.RESYNC, "")]


def test_bound_once_resync_done_is_sent(rig: Rig) -> None:
    s = rig.sender()
    rig.primary.start_resync(s)  # type: ignore[arg-type]
    rig.primary.bind()
    brk = rig.primary.detach("peer gone")
    assert brk is not None and brk.hold and rig.primary.mode is Mode.HELD


def test_detach_while_replicating_holds(rig: Rig) -> None:
    s = replicating(rig)
    brk = rig.primary.detach("the secondary asked for a full resync", requested=True)
    assert brk is not None and brk.hold and brk.requested and brk.sender is s
    assert rig.primary.mode is Mode.HELD and rig.primary.detach("again") is None


def test_connecting_blocks_new_ops_until_the_stream_is_up(rig: Rig) -> None:
    rig.primary.connecting(10)
    done: list[str] = []
    t = in_thread(lambda: done.append(rig.primary.submit(w("0/a", 0)) and "submitted"))
    t.join(0.2)
    assert t.is_alive() and not done
    s = rig.sender()
    assert rig.primary.replicate_via(s, "g1")  # type: ignore[arg-type]
    t.join(5)
    assert done and s.sent == [w("0/a", 0)] and not rig.dirty("0/a", 0)


def test_connecting_times_out_into_a_hold(rig: Rig) -> None:
    rig.primary.reset(bound=True, connect_timeout_s=0.1)  # as after a swap
    wait = rig.primary.submit(w("0/a", 0))
    assert rig.primary.mode is Mode.HELD and rig.dirty("0/a", 0)
    assert rig.failures and rig.failures[0][1] is Mode.CONNECTING and rig.failures[0][2]
    assert not rig.primary.replicate_via(rig.sender(), "g1")  # type: ignore[arg-type]
    assert rig.primary.resolve_hold(rig.primary.hold_token, True)
    wait()


def test_replicate_via_refuses_when_something_was_tracked(rig: Rig) -> None:
    rig.primary.submit(w("0/a", 0))()
    rig.primary.connecting(5)
    assert not rig.primary.replicate_via(rig.sender(), "g1")  # type: ignore[arg-type]


def resync(rig: Rig) -> tuple[FakeSender, ResyncTracker]:
    s = rig.sender()
    s.auto_ack = True
    return s, rig.primary.start_resync(s)  # type: ignore[arg-type]


def test_before_install_every_op_is_only_marked_and_recorded(rig: Rig) -> None:
    s, tracker = resync(rig)
    rig.primary.submit(w("0/a", 3))()
    rig.primary.submit(ops.Chmod("0/a", 0o600))()
    assert not s.sent and rig.dirty("0/a", 3)
    assert tracker.during.is_dirty("0/a", 3) and tracker.during.get("0/a").flags


def test_install_orders_plan_ops_first_and_folds_changes_since_the_scan(rig: Rig) -> None:
    s, tracker = resync(rig)
    rig.primary.submit(w("0/f", 9))()  # after the scan, before install: settled file
    rig.primary.submit(ops.Create("0/new", 0o100644))()  # not in the plan: stays unsettled
    under_lock: list[bool] = []

    def enqueue() -> None:
        under_lock.append(tracker.lock.locked())
        s.enqueue(ops.Mkdir("0/d", 0o755))

    sizes = {"0/f": 20 * ZS, "0/g": 4 * ZS}
    added = tracker.install([("0/f", [1])], {"0/g": 4 * ZS}, sizes.get, enqueue)
    assert under_lock == [True] and s.sent == [ops.Mkdir("0/d", 0o755)]
    assert tracker.pending == {"0/f": {1, 9}} and added == ZS
    assert tracker.unresolved == {"0/g": {0, 1, 2, 3}}
    assert tracker.unsettled("0/new") and not tracker.unsettled("0/f")
    fc = tracker.during.get("0/f")
    assert fc is not None and not fc.has_data() and fc.flags & Change.METADATA


def test_after_install_pending_zones_are_marked_others_sent(rig: Rig) -> None:
    s, tracker = resync(rig)
    tracker.install([("0/f", [1, 2])], {}, lambda p: None, lambda: None)
    rig.primary.submit(w("0/f", 1))()  # pending: the resync reads it later
    rig.primary.submit(w("0/f", 5))()  # not pending: replicated now (no ACK needed here)
    rig.primary.submit(ops.Write("0/f", 2 * ZS - 2, b"abcd"))  # zones 1 and 2: both pending
    rig.primary.submit(ops.Write("0/f", 2 * ZS - 2 + ZS, b"abcd"))  # zones 2 and 3: send
    rig.primary.submit(ops.Truncate("0/f", 100 * ZS))
    assert s.sent == [w("0/f", 5), ops.Write("0/f", 3 * ZS - 2, b"abcd"),
                      ops.Truncate("0/f", 100 * ZS)]  # fmt: skip
    assert rig.dirty("0/f", 1) and not rig.dirty("0/f", 5)
    assert tracker.take("0/f", 1) and not tracker.take("0/f", 1)


def test_namespace_changes_unsettle_the_path_and_what_is_under_it(rig: Rig) -> None:
    s, tracker = resync(rig)
    tracker.install([("0/d/f", [0])], {}, lambda p: None, lambda: None)
    rig.primary.submit(ops.Rename("0/d", "0/e"))()
    rig.primary.submit(w("0/e/f", 4))()
    rig.primary.submit(ops.Create("0/x", 0o100644))()
    rig.primary.submit(w("0/x", 0))()
    rig.primary.submit(ops.Fallocate("0/y", 0x08, 0, ZS))()  # collapse range
    assert not s.sent and not tracker.take("0/d/f", 0)  # dropped: the final pass does it
    assert tracker.unsettled("0/e/f") and tracker.unsettled("0/x") and tracker.unsettled("0/y")
    record = tracker.swap()
    assert record.is_dirty("0/e/f", 4) and record.is_dirty("0/x", 0)
    assert record.get("0/y").flags & Change.RENAMED


def test_hash_compared_zones_written_meanwhile_are_sent_whatever_the_hashes(rig: Rig) -> None:
    s, tracker = resync(rig)
    tracker.install([], {"0/g": 3 * ZS}, lambda p: None, lambda: None)
    rig.primary.submit(w("0/g", 1))()  # unresolved: only marked
    assert not s.sent
    assert tracker.resolve("0/g", 1, differs=False)  # written meanwhile: send it anyway
    assert not tracker.resolve("0/g", 0, differs=False)
    assert tracker.resolve("0/g", 2, differs=True)
    assert tracker.pending == {"0/g": {1, 2}}
    rig.primary.submit(w("0/g", 0))()  # resolved and equal: replicated from now on
    assert s.sent == [w("0/g", 0)]


def test_drop_after_compare_keeps_written_zones_pending(rig: Rig) -> None:
    _, tracker = resync(rig)
    tracker.install([], {"0/g": 2 * ZS}, lambda p: None, lambda: None)
    rig.primary.submit(w("0/g", 1))()
    tracker.drop("0/g", written_pending=True)
    assert tracker.pending == {"0/g": {1}} and not tracker.unresolved


def test_quiesced_holds_new_ops_and_finish_goes_replicate(rig: Rig) -> None:
    s, tracker = resync(rig)
    tracker.install([], {}, lambda p: None, lambda: None)
    rig.primary.submit(w("0/a", 0))()
    done: list[int] = []
    with rig.primary.quiesced():
        t = in_thread(lambda: done.append(1) if rig.primary.submit(w("0/b", 0)) else None)
        t.join(0.2)
        assert t.is_alive()
        assert rig.primary.finish_resync(s, "g7")  # type: ignore[arg-type]
    t.join(5)
    assert done and rig.primary.mode is Mode.REPLICATE
    assert rig.bitmap.base_generation == "g7" and rig.bitmap.changes().is_empty()
    assert s.sent[-1] == w("0/b", 0)


def test_prefixed_moves_every_path_under_the_directory() -> None:
    assert ops.prefixed(ops.Rename("a", "b/c"), "1") == ops.Rename("1/a", "1/b/c")
    assert ops.prefixed(ops.Chmod("", 0o755), "0") == ops.Chmod("0", 0o755)
    assert ops.prefixed(ops.Fsync(""), "2") == ops.Fsync("")
    assert ops.prefixed(ops.Symlink("../t", "l"), "0") == ops.Symlink("../t", "0/l")


def test_changeset_ops_mark_the_same_zones(rig: Rig) -> None:
    cs = ChangeSet()
    cs.apply(["z", "0/a", [0, 5, 6]])
    cs.apply(["t", "0/b", 3])
    rig.bitmap.mark_many(changeset_ops(cs))
    got = rig.bitmap.changes()
    for z in (0, 5, 6):
        assert got.is_dirty("0/a", z)
    assert got.get("0/b").tail == 3 and not got.is_dirty("0/a", 1)


def test_pacer_spaces_sends_to_the_cap() -> None:
    pacer, now, slept = Pacer(10 << 20, 0.0, burst=1 << 20), 0.0, 0.0
    for _ in range(40):  # 40 MiB at 10 MiB/s on an infinitely fast link
        pause = pacer.delay(1 << 20, now)
        slept += pause
        now += pause
    assert slept == pytest.approx(39 / 10, rel=0.01)
    slow = Pacer(10 << 20, 0.0)
    assert slow.delay(1 << 20, 0.0) == 0 and slow.delay(1 << 20, 5.0) == 0  # link slower
