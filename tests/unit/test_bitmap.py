"""Zones, ChangeSet (pure) and the persistent ZoneBitmap, including simulated crashes."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from unittest.mock import Mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from node_agent.replication import ops
from node_agent.replication.tracking.bitmap import ZoneBitmap
from node_agent.replication.tracking.zones import (
    FALLOC_FL_COLLAPSE_RANGE,
    FALLOC_FL_KEEP_SIZE,
    FALLOC_FL_PUNCH_HOLE,
    FALLOC_FL_ZERO_RANGE,
    IDENTITY_CHANGED,
    RENAME_EXCHANGE,
    Change,
    ChangeSet,
    zone_count,
    zones_of,
)

ZS = 8
NAMES = ["a", "b", "c", "d/e", "d/f"]
names = st.sampled_from(NAMES)
zone_sizes = st.sampled_from([1, 2, 4, 8, 16, 1 << 20])


@given(st.integers(0, 10_000), st.integers(0, 5_000), zone_sizes)
def test_zones_of_covers_exactly_the_bytes(offset: int, length: int, zs: int) -> None:
    zones = zones_of(offset, length, zs)
    touched = {b // zs for b in range(offset, offset + length)}
    assert set(zones) == touched


def test_zone_size_must_be_a_power_of_two() -> None:
    for bad in (lambda: zones_of(0, 1, 3), lambda: ChangeSet(0)):
        pytest.raises(ValueError, bad)
    assert zone_count(0, 4) == 0 and zone_count(1, 4) == 1 and zone_count(8, 4) == 2


PUNCH = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
falloc_modes = st.sampled_from(
    [0, FALLOC_FL_KEEP_SIZE, PUNCH, FALLOC_FL_ZERO_RANGE, FALLOC_FL_COLLAPSE_RANGE]
)
op_strategy = st.one_of(
    st.builds(ops.Write, names, st.integers(0, 64), st.binary(max_size=24)),
    st.builds(ops.Truncate, names, st.integers(0, 80)),
    st.builds(ops.Fallocate, names, falloc_modes, st.integers(0, 64), st.integers(1, 32)),
    st.builds(ops.Rename, names, names, st.sampled_from([0, RENAME_EXCHANGE])),
    st.builds(ops.Rename, st.just("d"), st.sampled_from(["g", "h"])),
    st.builds(ops.Unlink, names),
    st.builds(ops.Create, names, st.just(0o100644)),
    st.builds(ops.Link, names, names),
    st.builds(ops.Chmod, names, st.just(0o600)),
    st.builds(ops.Utimens, names, st.just(1), st.just(2)),
    st.builds(ops.Fsync, names),
)


@given(st.lists(op_strategy, max_size=30), zone_sizes)
def test_replaying_the_returned_mutations_rebuilds_the_same_set(
    op_list: list[ops.Op], zs: int
) -> None:
    live, replay = ChangeSet(zs), ChangeSet(zs)
    for op in op_list:
        for m in live.record(op):
            replay.apply(m)
        again = live.record(op)
        assert again == [] or isinstance(op, ops.Rename)  # idempotent
        for m in again:
            replay.apply(m)
    assert replay == live
    assert ChangeSet.from_dict(live.to_dict()) == live
    assert [p for p, _ in live] == sorted(p for p, _ in live)


@given(st.lists(op_strategy, max_size=15), st.lists(op_strategy, max_size=15))
def test_merge_is_a_union(first: list[ops.Op], second: list[ops.Op]) -> None:
    a, b = ChangeSet(ZS), ChangeSet(ZS)
    for op in first:
        a.record(op)
    for op in second:
        b.record(op)
    ab, ba = a.copy().merge(b), b.copy().merge(a)
    assert ab == ba
    assert ab.copy().merge(a) == ab  # idempotent
    for cs in (a, b):
        for path, fc in cs:
            assert all(ab.is_dirty(path, z) for z in fc.zones)
            assert ab.namespace_dirty(path) or not fc.flags
            if fc.tail is not None:
                assert ab.is_dirty(path, fc.tail + 5)
    assert ab.is_empty() == (a.is_empty() and b.is_empty())


def test_rename_moves_zones_and_subtrees() -> None:
    cs = ChangeSet(4)
    cs.record(ops.Write("d/x", 0, b"123456"))
    cs.record(ops.Write("a", 8, b"1"))
    cs.record(ops.Rename("d", "e"))
    assert cs.get("e/x") is not None and sorted(cs.get("e/x").zones) == [0, 1]  # type: ignore[union-attr]
    assert cs.get("d/x") is None
    assert cs.namespace_dirty("d") and cs.namespace_dirty("e")
    cs.record(ops.Rename("a", "e/x", RENAME_EXCHANGE))
    assert cs.is_dirty("e/x", 2) and cs.is_dirty("a", 1)
    cs.record(ops.Rename("a", "e/x"))  # replaces e/x, whose zones may live on elsewhere
    assert cs.orphaned and cs.is_dirty("e/x", 1)


def test_write_into_a_dirty_zone_adds_nothing() -> None:
    cs = ChangeSet(1 << 20)
    assert cs.record(ops.Write("f", 0, b"x" * 10)) == [["z", "f", [0]]]
    assert cs.record(ops.Write("f", 5000, b"y")) == []
    assert cs.record(ops.Truncate("f", 3 << 20))[0] == ["t", "f", 3]
    assert cs.record(ops.Write("f", 10 << 20, b"z")) == []  # beyond the tail: dirty already
    assert cs.record(ops.Fallocate("f", 0, 0, 100 << 20)) == []  # size flag already set
    assert cs.get("f").flags == Change.METADATA  # type: ignore[union-attr]


# -- model: a flat file system with hard links; what the record must cover ---------------
@st.composite
def fs_and_ops(draw: st.DrawFn) -> tuple[dict[str, int], dict[int, bytes], list[ops.Op]]:
    names_map: dict[str, int] = {}
    data: dict[int, bytes] = {}
    for i, name in enumerate(draw(st.lists(names, unique=True, max_size=5))):
        if names_map and draw(st.booleans()):
            names_map[name] = draw(st.sampled_from(sorted(names_map.values())))  # a hard link
        else:
            names_map[name] = i
            data[i] = draw(st.binary(max_size=40))
    return names_map, data, draw(st.lists(op_strategy, max_size=25))


def _run(names_map: dict[str, int], data: dict[int, bytearray], op: ops.Op, nxt: int) -> bool:
    """Apply op to the model like the kernel would; False if the kernel would refuse it."""
    path = getattr(op, "path", None)
    if isinstance(op, ops.Create):
        if path in names_map:
            return False
        names_map[path], data[nxt] = nxt, bytearray()  # type: ignore[index]
        return True
    if isinstance(op, ops.Rename | ops.Link):
        if op.src not in names_map or op.src == op.dst:
            return False
        if isinstance(op, ops.Link):
            if op.dst in names_map:
                return False
            names_map[op.dst] = names_map[op.src]
        elif op.flags & RENAME_EXCHANGE:
            if op.dst not in names_map:
                return False
            names_map[op.src], names_map[op.dst] = names_map[op.dst], names_map[op.src]
        else:
            names_map[op.dst] = names_map.pop(op.src)
        return True
    if path not in names_map:
        return False
    buf = data[names_map[path]]
    if isinstance(op, ops.Unlink):
        del names_map[path]
    elif isinstance(op, ops.Write):
        buf.extend(bytes(max(0, op.offset - len(buf))))
        buf[op.offset : op.offset + len(op.data)] = op.data
    elif isinstance(op, ops.Truncate):
        del buf[op.size :]
        buf.extend(bytes(op.size - len(buf)))
    elif isinstance(op, ops.Fallocate):
        end = op.offset + op.length
        if op.mode & FALLOC_FL_COLLAPSE_RANGE:
            if end >= len(buf):
                return False
            del buf[op.offset : end]
        elif op.mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE):
            stop = min(end, len(buf))
            buf[op.offset : stop] = bytes(max(0, stop - op.offset))
            if not op.mode & FALLOC_FL_KEEP_SIZE:
                buf.extend(bytes(max(0, end - len(buf))))
        elif not op.mode & FALLOC_FL_KEEP_SIZE:
            buf.extend(bytes(max(0, end - len(buf))))
    return True


@settings(max_examples=400)
@given(fs_and_ops(), st.sampled_from([1, 4, 8]))
def test_the_record_covers_every_changed_zone(case: tuple, zs: int) -> None:
    """What the planner relies on: for a name present before and after, each zone that
    differs from the old content (cut or zero-extended to the new size, as the
    secondary's Truncate does) is dirty -- unless the planner hash-compares that file
    (a renamed name or directory; a change the record does not explain)."""
    names0, data0, op_list = case
    names_map = dict(names0)
    data = {k: bytearray(v) for k, v in data0.items()}
    cs = ChangeSet(zs)
    for i, op in enumerate(op_list):
        if _run(names_map, data, op, 1000 + i):
            cs.record(op)
    renamed = {p for p, fc in cs if fc.flags & IDENTITY_CHANGED}
    for path, ino in names_map.items():
        if path not in names0:
            continue
        group = [n for n, i in names_map.items() if i == ino]
        if any(n in renamed or n.partition("/")[0] in renamed for n in group):
            continue
        records = [cs.get(n) for n in group if cs.get(n) is not None]
        has_data = any(fc.has_data() for fc in records)  # type: ignore[union-attr]
        if not has_data and not any(fc.flags for fc in records):  # type: ignore[union-attr]
            continue  # planner: unexplained (size, mtime) change -> hash compare
        if cs.orphaned and list(names0.values()).count(names0[path]) > 1:
            continue  # planner: changed, had several links on the secondary -> hash compare
        new, old = bytes(data[ino]), data0[names0[path]]
        old = old[: len(new)] + bytes(max(0, len(new) - len(old)))
        for z in range(zone_count(len(new), zs)):
            if new[z * zs : (z + 1) * zs] != old[z * zs : (z + 1) * zs]:
                extension = z >= len(data0[names0[path]]) // zs
                assert extension or any(cs.is_dirty(n, z) for n in group), (path, z)


# -- ZoneBitmap ------------------------------------------------------------------------
def test_mark_is_durable_and_free_when_zone_already_dirty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    syncs = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (syncs.append(fd), real(fd)))
    bm = ZoneBitmap(tmp_path, 1 << 20)
    bm.clear("gen-1")
    bm.mark(ops.Write("disk.img", 0, b"x" * 4096))
    assert len(syncs) == 1
    for off in range(4096, 1 << 20, 65536):
        bm.mark(ops.Write("disk.img", off, b"y" * 4096))
    assert len(syncs) == 1 and bm.pending_records == 1
    bm.mark(ops.Write("disk.img", 1 << 20, b"z"))
    assert len(syncs) == 2
    reloaded = ZoneBitmap(tmp_path, 1 << 20)
    assert reloaded.load() == bm.changes() and reloaded.base_generation == "gen-1"


def test_failed_fdatasync_recovers_through_a_snapshot_or_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bm = ZoneBitmap(tmp_path, 4)
    bm.clear("g")
    real = os.fdatasync

    def failing(fd: int) -> None:
        raise OSError(5, "EIO")

    monkeypatch.setattr(os, "fdatasync", failing)
    bm.mark(ops.Write("f", 0, b"1"))  # recovered by a full snapshot (fsync, not fdatasync)
    assert ZoneBitmap(tmp_path, 4).load().is_dirty("f", 0)
    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(OSError):
        bm.mark(ops.Write("f", 8, b"1"))
    with pytest.raises(OSError):  # still poisoned: the zone is in memory but not durable
        bm.mark(ops.Write("f", 8, b"2"))
    monkeypatch.setattr(os, "fdatasync", real)
    monkeypatch.undo()
    bm.mark(ops.Write("f", 8, b"3"))
    assert ZoneBitmap(tmp_path, 4).load().is_dirty("f", 2)


def test_crash_between_snapshot_and_new_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bm = ZoneBitmap(tmp_path, 4, compact_every=1000)
    bm.clear("g")
    for i in range(5):
        bm.mark(ops.Write("f", i * 4, b"x"))
    expected = bm.changes()
    monkeypatch.setattr(bm._journal, "_new_journal", Mock(side_effect=OSError(28, "ENOSPC")))
    with pytest.raises(OSError):
        bm.compact()  # the snapshot is renamed in; the old journal (with a "mv") remains
    monkeypatch.undo()
    assert ZoneBitmap(tmp_path, 4).load() == expected


def test_concurrent_marks_are_all_durable(tmp_path: Path) -> None:
    bm = ZoneBitmap(tmp_path, 4, compact_every=50)
    bm.clear("g")

    def writer(k: int) -> None:
        for i in range(200):
            bm.mark(ops.Write(f"f{k % 3}", (i * 7 + k) * 3, b"ab"))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    loaded = ZoneBitmap(tmp_path, 4).load()
    assert loaded == bm.changes()
    for k in range(8):
        for i in range(200):
            assert all(loaded.is_dirty(f"f{k % 3}", z) for z in zones_of((i * 7 + k) * 3, 2, 4))


class BitmapMachine(RuleBasedStateMachine):
    """Marks, clears, compactions and crashes; every acknowledged mark survives."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="bitmap-"))
        self.compact_every = 7
        self.bm = ZoneBitmap(self.dir, ZS, compact_every=self.compact_every)
        self.model = ChangeSet(ZS)
        self.base: str | None = None
        self.states = [self.model.copy()]  # state after k journal records since the snapshot

    def teardown(self) -> None:
        self.bm.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _after_mark(self) -> None:
        if self.bm.pending_records == 0:
            self.states = [self.model.copy()]
        elif self.bm.pending_records == len(self.states):
            self.states.append(self.model.copy())

    def _reopen(self) -> ChangeSet:
        self.bm.close()
        self.bm = ZoneBitmap(self.dir, ZS, compact_every=self.compact_every)
        return self.bm.load()

    @rule(op=op_strategy)
    def mark(self, op: ops.Op) -> None:
        self.bm.mark(op)
        self.model.record(op)
        self._after_mark()

    @rule(gen=st.sampled_from(["g1", "g2"]))
    def clear(self, gen: str) -> None:
        self.bm.clear(gen)
        self.model, self.base = ChangeSet(ZS), gen
        self.states = [self.model.copy()]

    @rule(op=op_strategy, frac=st.floats(0, 1, exclude_max=True))
    def crash_while_marking(self, op: ops.Op, frac: float) -> None:
        """The op's record is torn: its mark never returned, so it must vanish whole."""
        journal = self.dir / "bitmap.journal"
        before_size, before_records = journal.stat().st_size, self.bm.pending_records
        before = self.model.copy()
        self.bm.mark(op)
        self.model.record(op)
        if self.bm.pending_records == before_records + 1:  # appended (no compaction)
            after_size = journal.stat().st_size
            os.truncate(journal, before_size + int(frac * (after_size - before_size)))
            self.model = before
        assert self._reopen() == self.model
        self._after_mark()

    @rule()
    def crash(self) -> None:
        assert self._reopen() == self.model

    @rule(junk=st.binary(min_size=1, max_size=40))
    def crash_with_garbage_tail(self, junk: bytes) -> None:
        with open(self.dir / "bitmap.journal", "ab") as fh:
            fh.write(junk)
        assert self._reopen() == self.model
        self.mark(ops.Write("after-garbage", 0, b"x"))  # appends stay readable
        assert self._reopen() == self.model

    @precondition(lambda self: self.bm.pending_records > 0)
    @rule(data=st.data())
    def lose_the_journal_tail_anywhere(self, data: st.DataObject) -> None:
        """Even a (non-POSIX) loss of synced bytes yields exactly an earlier state."""
        journal = self.dir / "bitmap.journal"
        os.truncate(journal, data.draw(st.integers(0, journal.stat().st_size)))
        loaded = self._reopen()
        kept = self.bm.pending_records
        assert loaded == self.states[kept]
        self.model, self.states = loaded, self.states[: kept + 1]

    @invariant()
    def matches_model(self) -> None:
        assert self.bm.changes() == self.model
        assert self.bm.base_generation == self.base


BitmapMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestBitmapMachine = BitmapMachine.TestCase
