"""plan_resync on real trees: applying the plan makes the secondary identical to the primary.

Trees are drawn by hypothesis from a small namespace (so that kinds change, names
collide, hard links and renames happen), built in two temp dirs, scanned, planned,
and the plan is applied through the secondary's real Applier.
"""

from __future__ import annotations

import os
import random
import shutil
import stat
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node_agent.replication import ops
from node_agent.replication.local.apply import Applier, UnsafePath
from node_agent.replication.local.scan import DIR, FILE, SYMLINK, scan_tree, zone_hashes
from node_agent.replication.resync.plan import (
    ResyncPlan,
    differing_zones,
    plan_resync,
)
from node_agent.replication.tracking.zones import (
    FALLOC_FL_KEEP_SIZE,
    FALLOC_FL_PUNCH_HOLE,
    RENAME_EXCHANGE,
    ChangeSet,
)

ZS = 16
ROOT = os.geteuid() == 0
TOP = ["a", "b", "c"]
SLOTS = [*TOP, *(f"{t}/{s}" for t in TOP for s in ("x", "y")), "a/x/q", "a/x/r"]
T0 = 1_700_000_000_000_000_000
mtimes = st.sampled_from([T0, T0 + 1, T0 + 10**9])  # few values: (size, mtime) collide
modes = st.sampled_from([0o644, 0o600, 0o755, 0o4755, 0o2750])
uids = st.sampled_from([0, 1000] if ROOT else [os.geteuid()])
Spec = dict[str, tuple]

entry = st.one_of(
    st.none(),
    st.tuples(st.just("d"), st.sampled_from([0o755, 0o700, 0o2775]), mtimes, uids),
    st.tuples(st.just("f"), st.binary(max_size=70), modes, mtimes, uids),
    st.tuples(st.just("f"), st.binary(max_size=70), modes, mtimes, uids),
    st.tuples(st.just("l"), st.sampled_from(["x", "../b", "/etc/passwd", "a/x"])),
    st.tuples(st.just("h"), st.sampled_from(SLOTS)),
    st.tuples(st.just("p"), st.sampled_from([0o644, 0o600]), mtimes),
)


@st.composite
def edited(draw: st.DrawFn, base: Spec) -> Spec:
    out = dict(base)
    for slot in SLOTS:
        choice = draw(st.sampled_from(["keep", "keep", "keep", "new", "flip", "meta"]))
        e = out.get(slot)
        if choice == "new":
            out[slot] = draw(entry)
        elif e and e[0] == "f" and choice == "flip" and e[1]:
            i = draw(st.integers(0, len(e[1]) - 1))
            out[slot] = ("f", e[1][:i] + bytes([e[1][i] ^ 1]) + e[1][i + 1 :], *e[2:])
        elif e and e[0] in "fd" and choice == "meta":
            out[slot] = (*e[:-3], draw(modes if e[0] == "f" else st.just(0o700)), *e[-2:])
    return out


def tree_specs() -> st.SearchStrategy[tuple[Spec, Spec]]:
    base = st.fixed_dictionaries({slot: entry for slot in SLOTS})
    return base.flatmap(lambda b: st.tuples(edited(b), edited(b)))


def valid(spec: Spec) -> Spec:
    out: Spec = {}
    for slot in SLOTS:  # parents come first in SLOTS
        e, parent = spec.get(slot), slot.rpartition("/")[0]
        if e is not None and (not parent or (out.get(parent) or ("",))[0] == "d"):
            out[slot] = e
    return {s: e for s, e in out.items() if e[0] != "h" or (out.get(e[1]) or ("",))[0] == "f"}


def build(spec: Spec, root: Path) -> None:
    spec = valid(spec)
    for path, e in spec.items():
        p = root / path
        if e[0] == "d":
            p.mkdir()
        elif e[0] == "f":
            p.write_bytes(e[1])
        elif e[0] == "l":
            p.symlink_to(e[1])
        elif e[0] == "p":
            os.mkfifo(p)
    for path, e in spec.items():
        if e[0] == "h":
            os.link(root / e[1], root / path)
        elif e[0] == "f":
            os.chown(root / path, e[4], e[4])
            os.chmod(root / path, e[2])
            os.utime(root / path, ns=(T0, e[3]))
        elif e[0] == "p":
            os.chmod(root / path, e[1])
            os.utime(root / path, ns=(T0, e[2]))
        elif e[0] == "l":
            os.utime(root / path, ns=(T0, T0), follow_symlinks=False)
    for path, e in sorted(spec.items(), reverse=True):
        if e[0] == "d":
            os.chown(root / path, e[3], e[3])
            os.chmod(root / path, e[1])
            os.utime(root / path, ns=(T0, e[2]))
    os.utime(root, ns=(T0, T0))


def snapshot(root: Path) -> dict:
    """Everything that must match: kind, mode, owner, size, mtime, content, links."""
    out: dict = {}
    groups: dict[tuple[int, int], list[str]] = defaultdict(list)
    for path, e in scan_tree(root).items():
        content = (root / path).read_bytes() if e.kind == FILE else None
        mode = None if e.kind == SYMLINK else stat.S_IMODE(e.mode)
        out[path] = (e.kind, mode, e.uid, e.gid, e.size, e.mtime_ns, e.target, e.rdev, content)
        if e.kind == FILE:
            groups[(e.dev, e.ino)].append(path)
    out["<links>"] = sorted(sorted(g) for g in groups.values() if len(g) > 1)
    return out


def copy_zones(ap: Applier, primary: Path, path: str, zones: list[int] | tuple[int, ...]) -> int:
    sent = 0
    with open(primary / path, "rb") as fh:
        for z in zones:
            fh.seek(z * ZS)
            data = fh.read(ZS)
            ap.apply(ops.Write(path, z * ZS, data))
            sent += len(data)
    return sent


def apply_plan(plan: ResyncPlan, primary: Path, secondary: Path) -> int:
    """What the resync driver does; returns the bytes sent."""
    sent = 0
    with Applier(secondary) as ap:
        for op in plan.ops:
            ap.apply(op)
        for path, zones in plan.send:
            sent += copy_zones(ap, primary, path, zones)
        for path in plan.needs_hash_compare:
            diff = differing_zones(
                zone_hashes(primary / path, ZS), zone_hashes(secondary / path, ZS)
            )
            sent += copy_zones(ap, primary, path, diff)
        for op in plan.final_ops:
            ap.apply(op)
    return sent


def resync(primary: Path, secondary: Path, dirty: ChangeSet | None, fullsync: bool) -> ResyncPlan:
    plan = plan_resync(scan_tree(primary), scan_tree(secondary), dirty, ZS, fullsync=fullsync)
    apply_plan(plan, primary, secondary)
    return plan


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "p").mkdir()
    (tmp_path / "s").mkdir()
    return tmp_path / "p", tmp_path / "s"


class Dirs:
    def __enter__(self) -> tuple[Path, Path]:
        self.tmp = Path(tempfile.mkdtemp(prefix="resync-"))
        for side in ("p", "s"):
            (self.tmp / side).mkdir()
        return self.tmp / "p", self.tmp / "s"

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.tmp)


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(tree_specs(), st.booleans())
def test_plan_without_record_makes_trees_identical(specs: tuple[Spec, Spec], full: bool) -> None:
    with Dirs() as (p, s):
        build(specs[0], p)
        build(specs[1], s)
        lp, ls = scan_tree(p), scan_tree(s)
        # Without fullsync a file of equal size and mtime is taken as equal (as rsync does),
        # and so are its other hard-linked names.
        blind = {
            n
            for n in lp.keys() & ls.keys()
            if lp[n].kind == ls[n].kind == FILE
            and (lp[n].size, lp[n].mtime_ns) == (ls[n].size, ls[n].mtime_ns)
        }
        inodes = {(lp[n].dev, lp[n].ino) for n in blind}
        blind |= {n for n, e in lp.items() if e.kind == FILE and (e.dev, e.ino) in inodes}
        resync(p, s, None, full)
        got, want = snapshot(s), snapshot(p)
        if not full:
            for n in blind:
                got[n], want[n] = got[n][:-1], want[n][:-1]
        assert got == want
        assert plan_resync(scan_tree(p), scan_tree(s), None, ZS).is_noop()


slot = st.sampled_from(SLOTS)
op_strategy = st.one_of(
    st.builds(ops.Write, slot, st.integers(0, 60), st.binary(min_size=1, max_size=20)),
    st.builds(ops.Write, slot, st.integers(0, 60), st.binary(min_size=1, max_size=20)),
    st.builds(ops.Truncate, slot, st.integers(0, 90)),
    st.builds(
        ops.Fallocate,
        slot,
        st.just(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE),
        st.integers(0, 40),
        st.integers(1, 40),
    ),
    st.builds(ops.Create, slot, st.just(0o100644)),
    st.builds(ops.Mkdir, slot, st.just(0o755)),
    st.builds(ops.Unlink, slot),
    st.builds(ops.Rmdir, slot),
    st.builds(ops.Rename, slot, slot, st.sampled_from([0, 0, RENAME_EXCHANGE])),
    st.builds(ops.Link, slot, slot),
    st.builds(ops.Symlink, st.just("x"), slot),
    st.builds(ops.Chmod, slot, modes),
    st.builds(ops.Utimens, slot, st.just(T0), mtimes),
)


def random_tree(rnd: random.Random) -> Spec:
    """Mostly directories at the top and files below, so that most operations succeed."""
    spec: Spec = {}
    for slot in SLOTS:
        r = rnd.random()
        mtime, uid = rnd.choice([T0, T0 + 1]), rnd.choice([0, 1000] if ROOT else [os.geteuid()])
        if (slot in TOP or slot == "a/x") and r < 0.8:
            spec[slot] = ("d", rnd.choice([0o755, 0o700]), mtime, uid)
        elif r < 0.85:
            data = rnd.randbytes(rnd.choice([1, 15, 16, 17, 40, 70]))
            spec[slot] = ("f", data, rnd.choice([0o644, 0o600, 0o4755]), mtime, uid)
        elif r < 0.9:
            spec[slot] = ("h", rnd.choice(SLOTS))
        elif r < 0.95:
            spec[slot] = ("l", "x")
    return spec


@SETTINGS
@given(st.randoms(use_true_random=False), st.lists(op_strategy, min_size=5, max_size=30))
def test_plan_with_record_makes_trees_identical(rnd: random.Random, op_list: list[ops.Op]) -> None:
    """Both copies start equal; the primary runs ALONE (ops recorded); then resync."""
    base = random_tree(rnd)
    with Dirs() as (p, s):
        build(base, p)
        build(base, s)
        cs = ChangeSet(ZS)
        with Applier(p) as ap:
            for op in op_list:
                try:
                    ap.apply(op)
                except (OSError, UnsafePath):
                    continue  # the application got an error: nothing to replicate
                cs.record(op)
        before = scan_tree(s)
        plan = resync(p, s, cs, False)
        assert snapshot(s) == snapshot(p)
        # The record limits the work: untouched files are neither sent nor compared
        # (except files reached through another, pre-existing hard link).
        touched = {getattr(op, "path", None) for op in op_list} | {
            getattr(op, n, None) for op in op_list for n in ("src", "dst")
        }
        listing = scan_tree(p)
        for path in plan.needs_hash_compare:
            e = listing[path]
            names = [n for n, o in listing.items() if (o.dev, o.ino) == (e.dev, e.ino)]
            linked = path in before and before[path].nlink > 1
            assert (
                linked
                or cs.orphaned
                or any(t and (n == t or n.startswith(t + "/")) for t in touched for n in names)
            )


def test_rename_is_detected_and_sends_nothing(dirs: tuple[Path, Path]) -> None:
    p, s = dirs
    data = os.urandom(10 * ZS + 3)
    (s / "old.bin").write_bytes(data)
    (p / "new").mkdir()
    (p / "new" / "name.bin").write_bytes(data)
    os.utime(s / "old.bin", ns=(T0, T0))
    os.utime(p / "new" / "name.bin", ns=(T0, T0))
    plan = plan_resync(scan_tree(p), scan_tree(s), None, ZS)
    assert ops.Rename("old.bin", "new/name.bin") in plan.ops
    assert plan.send == () and plan.needs_hash_compare == ("new/name.bin",)
    assert apply_plan(plan, p, s) == 0
    assert snapshot(s) == snapshot(p)


def test_fullsync_finds_changes_that_keep_size_and_mtime(dirs: tuple[Path, Path]) -> None:
    p, s = dirs
    for side, byte in ((p, b"a"), (s, b"b")):
        (side / "f").write_bytes(b"x" * 40 + byte + b"x" * 40)
        os.utime(side / "f", ns=(T0, T0))
        os.utime(side, ns=(T0, T0))
    assert plan_resync(scan_tree(p), scan_tree(s), None, ZS).is_noop()
    plan = plan_resync(scan_tree(p), scan_tree(s), None, ZS, fullsync=True)
    assert plan.needs_hash_compare == ("f",) and plan.hash_bytes == 81
    assert apply_plan(plan, p, s) == ZS  # one zone of the five
    assert (s / "f").read_bytes() == (p / "f").read_bytes()


def test_record_sends_only_dirty_zones(dirs: tuple[Path, Path]) -> None:
    p, s = dirs
    data = os.urandom(100 * ZS)
    for side in (p, s):
        (side / "disk").write_bytes(data)
    cs = ChangeSet(ZS)
    with Applier(p) as ap:
        for op in (ops.Write("disk", 5 * ZS + 3, b"hello"), ops.Write("disk", 70 * ZS, b"!")):
            ap.apply(op)
            cs.record(op)
    plan = plan_resync(scan_tree(p), scan_tree(s), cs, ZS)
    assert plan.send == (("disk", (5, 70)),) and plan.bytes_total == 2 * ZS
    assert plan.needs_hash_compare == ()
    apply_plan(plan, p, s)
    assert snapshot(s) == snapshot(p)


def test_record_with_other_zone_size_is_refused() -> None:
    with pytest.raises(ValueError):
        plan_resync({}, {}, ChangeSet(ZS * 2), ZS)


def test_plan_kinds_and_order(dirs: tuple[Path, Path]) -> None:
    """Type changes first, dirs top-down, removals bottom-up, times last."""
    p, s = dirs
    (p / "a").write_bytes(b"file now")
    (s / "a").mkdir()
    (s / "a" / "deep").mkdir()
    (s / "a" / "deep" / "f").write_bytes(b"1")
    (p / "n" / "m").mkdir(parents=True)
    plan = plan_resync(scan_tree(p), scan_tree(s), None, ZS)
    kinds = [type(op).__name__ for op in plan.ops]
    assert kinds[:5] == ["Unlink", "Rmdir", "Rmdir", "Mkdir", "Mkdir"]
    assert plan.ops[3] == ops.Mkdir("n", stat.S_IMODE((p / "n").stat().st_mode))
    assert all(isinstance(op, ops.Utimens) for op in plan.final_ops)
    assert {DIR, FILE} <= {e.kind for e in scan_tree(p).values()}
    apply_plan(plan, p, s)
    assert snapshot(s) == snapshot(p)
