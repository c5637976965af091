"""ActivityLog: zones with writes in flight survive any crash (superset, never subset)."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from node_agent.replication import ops
from node_agent.replication.activity_log import WHOLE_FILE, ActiveSet, ActivityLog, Key, Token
from node_agent.replication.zones import FALLOC_FL_COLLAPSE_RANGE, ChangeSet

ZS = 8
names = st.sampled_from(["a", "b", "d/c"])
op_strategy = st.one_of(
    st.builds(ops.Write, names, st.integers(0, 80), st.binary(min_size=1, max_size=20)),
    st.builds(ops.Truncate, names, st.integers(0, 80)),
    st.builds(ops.Fallocate, names, st.just(FALLOC_FL_COLLAPSE_RANGE), st.just(0), st.just(8)),
    st.builds(ops.Rename, names, names),
    st.builds(ops.Rename, st.just("d"), st.just("e")),
    st.builds(ops.Chmod, names, st.just(0o600)),
)


def covers(cs: ChangeSet, key: Key) -> bool:
    path, zone = key
    fc = cs.get(path)
    if zone == WHOLE_FILE:
        return fc is not None and fc.tail == 0
    return cs.is_dirty(path, zone)


def test_active_set_retires_idle_zones_in_batches() -> None:
    s = ActiveSet(max_active=4, retire_batch=2)
    for z in range(4):
        s.end(s.begin([("f", z)])[0])
    added, retired = s.begin([("f", 9)])
    assert added == [("f", 9)] and retired == [("f", 0), ("f", 1), ("f", 2)]
    assert s.begin([("f", 3)]) == ([], [])  # still active: no record
    busy = s.begin([("g", 0)])[0]
    s.begin([("g", 1)])
    s.begin([("g", 2)])
    assert ("g", 0) in s.refs  # busy zones are never retired
    s.end(busy)


def test_begin_costs_no_io_for_an_active_zone(tmp_path: Path) -> None:
    log = ActivityLog(tmp_path, 1 << 20, max_active=8)
    log.load()
    tok = log.begin(ops.Write("disk", 0, b"x"))
    assert log.pending_records == 1
    for i in range(100):
        log.end(log.begin(ops.Write("disk", i * 4096, b"y")))
    assert log.pending_records == 1
    log.end(tok)
    assert ActivityLog(tmp_path, 1 << 20).load().is_dirty("disk", 0)


def test_failed_sync_fails_begin_and_releases_the_zone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = ActivityLog(tmp_path, 4, max_active=2)
    log.load()

    def failing(fd: int) -> None:
        raise OSError(5, "EIO")

    monkeypatch.setattr(os, "fdatasync", failing)
    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(OSError):
        log.begin(ops.Write("f", 0, b"x"))
    monkeypatch.undo()
    assert log._active.refs[("f", 0)] == 0  # not left busy forever
    log.end(log.begin(ops.Write("f", 4, b"x")))  # recovered by a snapshot
    loaded = ActivityLog(tmp_path, 4).load()
    assert loaded.is_dirty("f", 0) and loaded.is_dirty("f", 1)


def test_concurrent_writers(tmp_path: Path) -> None:
    log = ActivityLog(tmp_path, 4, max_active=16, compact_every=20)
    log.load()
    held: list[Token] = []
    lock = threading.Lock()

    def writer(k: int) -> None:
        for i in range(300):
            tok = log.begin(ops.Write(f"f{k}", (i * 13) % 200, b"abc"))
            if i == 299:
                with lock:
                    held.append(tok)  # still in flight at the "crash"
            else:
                log.end(tok)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    loaded = ActivityLog(tmp_path, 4).load()
    for tok in held:
        assert tok and all(covers(loaded, key) for key in tok)


class ActivityMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="al-"))
        self.log = self._new()
        self.log.load()
        self.inflight: list[Token] = []
        self.ever: set[Key] = set()

    def _new(self) -> ActivityLog:
        return ActivityLog(self.dir, ZS, max_active=3, retire_batch=2, compact_every=5)

    def teardown(self) -> None:
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _begin(self, op: ops.Op) -> Token:
        tok = self.log.begin(op)
        self.ever.update(tok)
        return tok

    @rule(op=op_strategy)
    def begin(self, op: ops.Op) -> None:
        refs = self.log._active.refs
        before = set(refs)
        self.inflight.append(self._begin(op))
        if set(refs) - before and len(refs) > 3:  # over the limit: nothing idle is left
            assert all(refs.values())

    @precondition(lambda self: self.inflight)
    @rule(i=st.integers(0, 100))
    def end(self, i: int) -> None:
        self.log.end(self.inflight.pop(i % len(self.inflight)))

    def _crash(self) -> None:
        self.log.close()
        self.log = self._new()
        loaded = self.log.load()
        for tok in self.inflight:
            for key in tok:
                assert covers(loaded, key), key
        for path, fc in loaded:
            assert all((path, z) in self.ever for z in fc.zones)
            assert fc.tail is None or (path, WHOLE_FILE) in self.ever
        self.inflight = []  # the writes died with the process

    @rule()
    def crash(self) -> None:
        self._crash()

    @rule(op=op_strategy, frac=st.floats(0, 1, exclude_max=True))
    def crash_during_begin(self, op: ops.Op, frac: float) -> None:
        journal = self.dir / "activity.journal"
        size, records = journal.stat().st_size, self.log.pending_records
        self._begin(op)  # never returned to its caller: not in flight
        if self.log.pending_records == records + 1:
            end = journal.stat().st_size
            os.truncate(journal, size + int(frac * (end - size)))
        self._crash()

    @rule(junk=st.binary(min_size=1, max_size=30))
    def garbage_tail(self, junk: bytes) -> None:
        with open(self.dir / "activity.journal", "ab") as fh:
            fh.write(junk)
        self._crash()

    @rule()
    def clear(self) -> None:
        self.log.clear()

    @invariant()
    def inflight_zones_are_active(self) -> None:
        active = self.log.active()
        for tok in self.inflight:
            assert all(covers(active, key) for key in tok)


ActivityMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestActivityMachine = ActivityMachine.TestCase
