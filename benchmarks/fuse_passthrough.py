"""Benchmark the replicating FUSE passthrough against the plain disk, in one run (DESIGN §9).

Three targets on the same filesystem, measured side by side:
  plain    the directory itself (no FUSE)
  fuse     the FUSE mount with a no-op replicator (interception cost only)
  applier  the FUSE mount whose replicator applies every op to a second local directory
           through an Applier (the secondary's code path, without the network)

Workloads: ``dd bs=1M count=512 conv=fsync`` (MB/s) and fio 4 KiB random writes with an
fsync after each write, 1 and 4 jobs (IOPS, fsync p50). Prints medians and the ratios to
the plain disk. Needs root, /dev/fuse, fusermount3, dd, fio.

    .venv/bin/python benchmarks/fuse_passthrough.py [--dir /var/tmp] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from node_agent.replication.fuse.mount import Mount  # noqa: E402
from node_agent.replication.local.apply import Applier  # noqa: E402
from tests.integration.local_replicator import LocalReplicator  # noqa: E402


def dd_mbps(target: Path) -> float:
    out = target / "dd.bin"
    t0 = time.perf_counter()
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={out}", "bs=1M", "count=512", "conv=fsync", "status=none"],
        check=True,
    )
    elapsed = time.perf_counter() - t0
    out.unlink()
    return 512 * 1048576 / elapsed / 1e6


def fio_randwrite(target: Path, jobs: int, runtime: int) -> tuple[float, float]:
    """(IOPS, fsync p50 in µs) for 4 KiB random writes, fsync after each."""
    res = subprocess.run(
        ["fio", "--name=rw", f"--directory={target}", "--rw=randwrite", "--bs=4k",
         "--size=64m", f"--numjobs={jobs}", "--fsync=1", "--ioengine=psync",
         "--time_based", f"--runtime={runtime}", "--group_reporting",
         "--output-format=json"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    job = json.loads(res.stdout)["jobs"][0]
    p50 = job.get("sync", {}).get("lat_ns", {}).get("percentile", {}).get("50.000000", 0)
    for f in target.glob("rw.*"):
        f.unlink()
    return job["write"]["iops"], p50 / 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dir", default="/var/tmp", help="where to create the test directories")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--runtime", type=int, default=8, help="seconds per fio run")
    ap.add_argument("--no-writeback", action="store_true", help="mount without writeback cache")
    args = ap.parse_args()
    for tool in ("dd", "fio", "fusermount3"):
        if shutil.which(tool) is None:
            sys.exit(f"needs {tool}")

    base = Path(tempfile.mkdtemp(prefix="mp-bench-", dir=args.dir))
    dirs = {n: base / n for n in ("plain", "b-null", "m-null", "b-app", "s-app", "m-app")}
    for d in dirs.values():
        d.mkdir()
    opts = {"writeback_cache": not args.no_writeback}
    mounts = [
        Mount(dirs["b-null"], dirs["m-null"], LocalReplicator(), **opts),
        Mount(dirs["b-app"], dirs["m-app"], LocalReplicator(Applier(dirs["s-app"])), **opts),
    ]
    targets = {"plain": dirs["plain"], "fuse": dirs["m-null"], "applier": dirs["m-app"]}
    results: dict[str, dict[str, list[float]]] = {t: {} for t in targets}
    try:
        for m in mounts:
            m.start()
        benches: dict[str, Callable[[Path], tuple[float, ...]]] = {
            "dd": lambda t: (dd_mbps(t),),
            "fio1": lambda t: fio_randwrite(t, 1, args.runtime),
            "fio4": lambda t: fio_randwrite(t, 4, args.runtime),
        }
        for rnd in range(args.repeat):
            for bname, bench in benches.items():
                for tname, target in targets.items():  # interleaved: same conditions
                    vals = bench(target)
                    for i, v in enumerate(vals):
                        results[tname].setdefault(f"{bname}.{i}", []).append(v)
                    print(f"  round {rnd + 1} {bname:5} {tname:8} {vals}", file=sys.stderr)
    finally:
        for m in mounts:
            m.stop()
        shutil.rmtree(base, ignore_errors=True)

    med = {t: {k: statistics.median(v) for k, v in r.items()} for t, r in results.items()}
    wb = "off" if args.no_writeback else "on (max_background=64)"
    print(f"\nmedians of {args.repeat} rounds, writeback cache {wb}, dir {args.dir}\n")
    rows = [
        ("dd bs=1M count=512 conv=fsync", "dd.0", "MB/s", True),
        ("fio 4k randwrite+fsync, 1 job", "fio1.0", "IOPS", True),
        ("  fsync p50 (1 job)", "fio1.1", "µs", False),
        ("fio 4k randwrite+fsync, 4 jobs", "fio4.0", "IOPS", True),
        ("  fsync p50 (4 jobs)", "fio4.1", "µs", False),
    ]
    print(f"{'workload':34} {'plain disk':>12} {'FUSE only':>20} {'FUSE + Applier':>20}")
    for label, key, unit, ratio in rows:
        p = med["plain"][key]
        cells = [f"{p:9.0f} {unit}"]
        for t in ("fuse", "applier"):
            v = med[t][key]
            r = f" ({v / p:.2f}x)" if ratio and p else ""
            cells.append(f"{v:9.0f} {unit}{r}")
        print(f"{label:34} {cells[0]:>12} {cells[1]:>20} {cells[2]:>20}")


if __name__ == "__main__":
    main()
