"""scan_tree and zone_hashes on a real tree of 20,000 files, and a resync of it."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from node_agent.replication import ops
from node_agent.replication.local.apply import Applier
from node_agent.replication.local.scan import (
    DIR,
    FILE,
    OTHER,
    SYMLINK,
    available_hashes,
    negotiate_hash,
    scan_tree,
    zone_hashes,
)
from node_agent.replication.resync.plan import differing_zones, plan_resync
from tests.conftest import require_binary

N_DIRS, PER_DIR = 100, 200  # 20,000 files
ZS = 4096


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scan") / "primary"
    for d in range(N_DIRS):
        sub = root / f"d{d:03d}" / "sub"
        sub.mkdir(parents=True)
        for f in range(PER_DIR):
            (sub / f"f{f:03d}.dat").write_bytes(b"%d/%d\n" % (d, f) * (f % 7))
    (root / "link").symlink_to("d000/sub/f001.dat")
    os.link(root / "d000/sub/f002.dat", root / "hard")
    os.mkfifo(root / "fifo")
    with open(root / "sparse.img", "wb") as fh:
        fh.truncate(64 * ZS)
        fh.seek(10 * ZS)
        fh.write(b"data")
    return root


def test_scan_lists_every_entry_exactly(tree: Path) -> None:
    start = time.perf_counter()
    listing = scan_tree(tree)
    elapsed = time.perf_counter() - start
    print(f"\nscan_tree: {len(listing)} entries in {elapsed:.3f} s")
    expected = {""}
    for dirpath, dirnames, filenames in os.walk(tree):
        rel = os.path.relpath(dirpath, tree)
        prefix = "" if rel == "." else rel + "/"
        expected.update(prefix + n for n in dirnames + filenames)
    assert set(listing) == expected
    assert (
        sum(e.kind == FILE for e in listing.values()) == N_DIRS * PER_DIR + 2
    )  # + hard, sparse.img
    assert listing["link"].kind == SYMLINK and listing["link"].target == "d000/sub/f001.dat"
    assert listing["fifo"].kind == OTHER and stat.S_ISFIFO(listing["fifo"].mode)
    assert listing["d042"].kind == DIR and listing[""].kind == DIR
    hard, orig = listing["hard"], listing["d000/sub/f002.dat"]
    assert (hard.dev, hard.ino) == (orig.dev, orig.ino) and hard.nlink == 2
    for path in ("d007/sub/f006.dat", "sparse.img", "hard"):
        st = os.lstat(tree / path)
        e = listing[path]
        assert (e.mode, e.uid, e.gid, e.size, e.mtime_ns) == (
            st.st_mode,
            st.st_uid,
            st.st_gid,
            st.st_size,
            st.st_mtime_ns,
        )


def test_zone_hashes_match_content_and_skip_holes(tree: Path, tmp_path: Path) -> None:
    dense = tmp_path / "dense.img"
    dense.write_bytes((tree / "sparse.img").read_bytes())
    for algo in available_hashes():
        sparse_h = zone_hashes(tree / "sparse.img", ZS, algo=algo)
        assert sparse_h == zone_hashes(dense, ZS, algo=algo)  # holes hash as zeros
        assert len(sparse_h) == 64 and sparse_h[0] == sparse_h[63] != sparse_h[10]
        assert zone_hashes(dense, ZS, [10, 99, 3], algo=algo) == {
            10: sparse_h[10],
            3: sparse_h[3],
        }
    with pytest.raises(ValueError):
        zone_hashes(dense, ZS, algo="md4")
    assert negotiate_hash(["sha256-128", "blake2b-128"]) == "blake2b-128"
    assert negotiate_hash(["xxh3-128", "sha256-128"], ["xxh3-128"]) in ("xxh3-128", "sha256-128")
    with pytest.raises(ValueError):
        negotiate_hash(["md4"])


def test_copy_is_a_noop_then_changes_are_resynced(tree: Path, tmp_path: Path) -> None:
    secondary = tmp_path / "secondary"
    subprocess.run([require_binary("cp"), "-a", str(tree), str(secondary)], check=True)
    start = time.perf_counter()
    plan = plan_resync(scan_tree(tree), scan_tree(secondary), None, ZS)
    print(f"\nscan both + plan of identical copies: {time.perf_counter() - start:.3f} s")
    assert plan.is_noop(), plan

    (secondary / "d005/sub/f010.dat").write_bytes(b"changed on the secondary")
    shutil.rmtree(secondary / "d006")
    (secondary / "extra").mkdir()
    (secondary / "extra" / "junk").write_bytes(b"x")
    os.rename(secondary / "d007/sub/f050.dat", secondary / "moved.dat")
    os.chmod(secondary / "d008/sub/f001.dat", 0o600)
    plan = plan_resync(scan_tree(tree), scan_tree(secondary), None, ZS)
    assert ops.Rename("moved.dat", "d007/sub/f050.dat") in plan.ops
    assert sum(isinstance(op, ops.Create) for op in plan.ops) == PER_DIR
    with Applier(secondary) as ap:
        for op in plan.ops:
            ap.apply(op)
        for path, zones in plan.send:
            with open(tree / path, "rb") as fh:
                for z in zones:
                    fh.seek(z * ZS)
                    ap.apply(ops.Write(path, z * ZS, fh.read(ZS)))
        for path in plan.needs_hash_compare:
            diff = differing_zones(zone_hashes(tree / path, ZS), zone_hashes(secondary / path, ZS))
            with open(tree / path, "rb") as fh:
                for z in diff:
                    fh.seek(z * ZS)
                    ap.apply(ops.Write(path, z * ZS, fh.read(ZS)))
        for op in plan.final_ops:
            ap.apply(op)
    assert plan_resync(scan_tree(tree), scan_tree(secondary), None, ZS).is_noop()
    again = plan_resync(scan_tree(tree), scan_tree(secondary), None, ZS, fullsync=True)
    assert again.ops == () and again.send == ()
    for path in again.needs_hash_compare:  # fullsync: every file compared; none differs
        assert zone_hashes(tree / path, ZS) == zone_hashes(secondary / path, ZS), path
