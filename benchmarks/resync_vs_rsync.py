"""Resync vs rsync, side by side in one run on this machine (DESIGN §9).

(a) a file (default 1 GiB) with 1 % of its 1 MiB zones changed: our resync without
    a record (scan, plan, per-zone hashes on both sides, copy the differing zones
    through the secondary's Applier) vs `rsync -a --inplace --no-whole-file` (the
    delta algorithm, as across a network; local rsync would otherwise copy whole files);
(b) the same with the tracked bitmap (copy only the dirty zones);
(c) the reintegration check of a tree of small files (scan both + plan, nothing
    changed) vs `rsync -a --dry-run`.
The two "nodes" are two directories; everything is in the page cache for every
contender. Both sides hash concurrently (two threads) as two machines would.

    .venv/bin/python benchmarks/resync_vs_rsync.py [--size-mib 1024] [--files 100000]
"""

from __future__ import annotations

import argparse
import filecmp
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node_agent.replication import ops  # noqa: E402
from node_agent.replication.local.apply import Applier  # noqa: E402
from node_agent.replication.local.scan import (  # noqa: E402
    available_hashes,
    negotiate_hash,
    scan_tree,
    zone_hashes,
)
from node_agent.replication.resync.plan import (  # noqa: E402
    ResyncPlan,
    differing_zones,
    plan_resync,
)
from node_agent.replication.tracking.zones import ChangeSet  # noqa: E402

ZONE = 1 << 20


def copy_zones(ap: Applier, src: Path, path: str, zones: list[int] | tuple[int, ...]) -> int:
    sent = 0
    with open(src / path, "rb") as fh:
        for z in zones:
            data = os.pread(fh.fileno(), ZONE, z * ZONE)
            ap.apply(ops.Write(path, z * ZONE, data))
            sent += len(data)
    return sent


def run_plan(plan: ResyncPlan, primary: Path, secondary: Path, algo: str) -> tuple[int, float]:
    """Apply a plan as the resync driver would; returns (bytes sent, seconds hashing)."""
    sent, hashing = 0, 0.0
    with Applier(secondary) as ap, ThreadPoolExecutor(2) as pool:
        for op in plan.ops:
            ap.apply(op)
        for path, zones in plan.send:
            sent += copy_zones(ap, primary, path, zones)
        for path in plan.needs_hash_compare:
            t = time.perf_counter()
            mine = pool.submit(zone_hashes, primary / path, ZONE, None, algo)
            theirs = pool.submit(zone_hashes, secondary / path, ZONE, None, algo)
            diff = differing_zones(mine.result(), theirs.result())
            hashing += time.perf_counter() - t
            sent += copy_zones(ap, primary, path, diff)
        for op in plan.final_ops:
            ap.apply(op)
    return sent, hashing


def best(samples: list[float]) -> float:
    return min(samples)


class BigFile:
    """A primary and a secondary copy of one big file, 1 % of its zones changed on the primary."""

    def __init__(self, work: Path, size_mib: int, seed: int) -> None:
        self.p, self.s = work / "p", work / "s"
        self.p.mkdir()
        self.s.mkdir()
        rnd = random.Random(seed)
        print(f"preparing {size_mib} MiB file ...", flush=True)
        with open(self.p / "disk.img", "wb") as fh:
            for _ in range(size_mib):
                fh.write(rnd.randbytes(ZONE))
        day_ago = time.time_ns() - 86400 * 10**9  # rsync's quick check has 1 s resolution
        os.utime(self.p / "disk.img", ns=(day_ago, day_ago))
        shutil.copy2(self.p / "disk.img", self.s / "disk.img")
        self.zones = sorted(rnd.sample(range(size_mib), max(1, size_mib // 100)))
        self.changes = ChangeSet(ZONE)
        with Applier(self.p) as ap:  # what the application writes while ALONE
            for z in self.zones:
                op = ops.Write(
                    "disk.img", z * ZONE + rnd.randrange(0, ZONE - 65536), rnd.randbytes(65536)
                )
                ap.apply(op)
                self.changes.record(op)
        st = os.stat(self.s / "disk.img")
        self.old_times = (st.st_atime_ns, st.st_mtime_ns)
        with open(self.s / "disk.img", "rb") as fh:
            self.old = {z: os.pread(fh.fileno(), ZONE, z * ZONE) for z in self.zones}

    def reset_secondary(self) -> None:
        with open(self.s / "disk.img", "r+b") as fh:
            for z, data in self.old.items():
                os.pwrite(fh.fileno(), data, z * ZONE)
        os.utime(self.s / "disk.img", ns=self.old_times)
        os.utime(self.s, ns=self.old_times)

    def check(self) -> None:
        assert filecmp.cmp(self.p / "disk.img", self.s / "disk.img", shallow=False)


def rsync(*args: str) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(["rsync", *args], check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - t, out


def bench_big_file(work: Path, size_mib: int, repeat: int, algo: str) -> dict[str, float]:
    bf = BigFile(work, size_mib, seed=1)
    total = size_mib * ZONE
    print(f"changed zones: {len(bf.zones)} of {size_mib} ({100 * len(bf.zones) / size_mib:.2f} %)")
    res: dict[str, list[float]] = {"hash": [], "bitmap": [], "rsync": []}
    sent: dict[str, int] = {}
    hashing: list[float] = []
    for _ in range(repeat):
        bf.reset_secondary()
        t = time.perf_counter()
        plan = plan_resync(scan_tree(bf.p), scan_tree(bf.s), None, ZONE)
        sent["hash"], h = run_plan(plan, bf.p, bf.s, algo)
        res["hash"].append(time.perf_counter() - t)
        hashing.append(h)
        bf.check()

        bf.reset_secondary()
        t = time.perf_counter()
        plan = plan_resync(scan_tree(bf.p), scan_tree(bf.s), bf.changes, ZONE)
        sent["bitmap"], _ = run_plan(plan, bf.p, bf.s, algo)
        res["bitmap"].append(time.perf_counter() - t)
        bf.check()

        bf.reset_secondary()
        dt, out = rsync("-a", "--inplace", "--no-whole-file", "--stats", f"{bf.p}/", f"{bf.s}/")
        res["rsync"].append(dt)
        literal = re.search(r"Literal data: ([\d,]+)", out)
        sent["rsync"] = int(literal.group(1).replace(",", "")) if literal else -1
        bf.check()
    r = {k: best(v) for k, v in res.items()}
    print(f"\n(a)/(b) {size_mib} MiB file, 1 % of zones changed (best of {repeat}; hash {algo})")
    hashed = best(hashing)
    print(f"  our resync, hash compare : {r['hash']:7.3f} s  (hashing both sides {hashed:.3f} s)")
    print(f"  our resync, bitmap       : {r['bitmap']:7.3f} s")
    print(f"  rsync --inplace (delta)  : {r['rsync']:7.3f} s")
    print(f"  ratio rsync / hash-compare resync : {r['rsync'] / r['hash']:6.2f}x")
    print(f"  ratio rsync / bitmap resync       : {r['rsync'] / r['bitmap']:6.1f}x")
    for k in ("hash", "bitmap"):
        pct = 100 * sent[k] / total
        print(f"  bytes sent by our resync ({k:6}): {sent[k]:>12,} = {pct:.2f} % of the file")
    pct = 100 * sent["rsync"] / total
    print(f"  literal bytes sent by rsync      : {sent['rsync']:>12,} = {pct:.2f} %")
    shutil.rmtree(bf.p)
    shutil.rmtree(bf.s)
    return r


def bench_hashes(path: Path) -> None:
    size = path.stat().st_size
    print(f"\nzone_hashes throughput (one side, {size >> 20} MiB, page cache):")
    for algo in available_hashes():
        t = time.perf_counter()
        zone_hashes(path, ZONE, None, algo)
        dt = time.perf_counter() - t
        print(f"  {algo:12}: {dt:6.3f} s  {size / dt / 1e6:7.0f} MB/s")
    if "xxh3-128" not in available_hashes():
        print("  (xxh3-128: `pip install xxhash` to measure it)")


def bench_tree(work: Path, files: int, repeat: int) -> dict[str, float]:
    p, s = work / "tp", work / "ts"
    per_dir = 1000
    print(f"\npreparing a tree of {files} small files ...", flush=True)
    for i in range(files):
        d = p / f"d{i // per_dir:04d}" / f"s{(i // 100) % 10}"
        if i % 100 == 0:
            d.mkdir(parents=True)
        (d / f"f{i % 100:02d}").write_bytes(b"x" * (i % 200))
    subprocess.run(["cp", "-a", str(p), str(s)], check=True)
    scan_p, scan_s, plan_t, ours, theirs = [], [], [], [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        lp = scan_tree(p)
        t1 = time.perf_counter()
        ls = scan_tree(s)
        t2 = time.perf_counter()
        plan = plan_resync(lp, ls, None, ZONE)
        t3 = time.perf_counter()
        assert plan.is_noop(), "the copies differ"
        scan_p.append(t1 - t0)
        scan_s.append(t2 - t1)
        plan_t.append(t3 - t2)
        ours.append(t3 - t0)
        dt, out = rsync("-a", "--dry-run", "--itemize-changes", f"{p}/", f"{s}/")
        assert not out.strip(), out[:200]
        theirs.append(dt)
    r = {"ours": best(ours), "rsync": best(theirs)}
    print(f"\n(c) reintegration check of {len(lp) - 1} entries, nothing changed (best of {repeat})")
    sp, ss, pl = best(scan_p), best(scan_s), best(plan_t)
    print(f"  scan primary {sp:.3f} s + scan secondary {ss:.3f} s + plan {pl:.3f} s")
    print(f"  our check (sequential, one process) : {r['ours']:7.3f} s")
    two_nodes = max(best(scan_p), best(scan_s)) + best(plan_t)
    print(f"  our check, each node scanning its own: {two_nodes:7.3f} s (estimate)")
    print(f"  rsync -a --dry-run                   : {r['rsync']:7.3f} s")
    seq, two = r["ours"] / r["rsync"], two_nodes / r["rsync"]
    print(f"  ratio ours / rsync : {seq:5.2f}x (sequential), {two:5.2f}x (two nodes)")
    shutil.rmtree(p)
    shutil.rmtree(s)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    # Default: what two agents negotiate (scan.PREFERRED_HASHES), i.e. what a resync uses.
    ap.add_argument("--hash", default=negotiate_hash(available_hashes()),
                    choices=available_hashes())  # fmt: skip
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    args = ap.parse_args()
    if shutil.which("rsync") is None:
        sys.exit("rsync is not installed (apt-get install -y rsync)")
    work = Path(tempfile.mkdtemp(prefix="resync-bench-", dir=args.workdir))
    try:
        bench_big_file(work, args.size_mib, args.repeat, args.hash)
        probe = work / "probe.img"
        with open(probe, "wb") as fh:
            for _ in range(args.size_mib):
                fh.write(os.urandom(ZONE))
        bench_hashes(probe)
        probe.unlink()
        bench_tree(work, args.files, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
