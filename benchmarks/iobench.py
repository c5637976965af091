"""The write workloads the benchmarks share (dd and fio), run directly or through a
command prefix (``nsenter ... --``: a server's namespaces, where its FUSE mount is seen).

- ``dd_fsync``: ``dd if=/dev/zero bs=1M count=N conv=fsync`` -> MB/s (the final fsync
  included, as dd counts it);
- ``fio_randwrite``: 4 KiB random writes, each followed by an fsync (psync, one job,
  time-based) -> IOPS, write completion and fsync latency p50/p99 (µs).

Their files are removed afterwards (by the same prefix: the host may not see the mount).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

MiB = 1 << 20


def dd_fsync(directory: Path, mib: int = 512, prefix: Sequence[str] = ()) -> float:
    target = directory / "dd.bin"
    try:
        res = subprocess.run([*prefix, "dd", "if=/dev/zero", f"of={target}", "bs=1M",
                              f"count={mib}", "conv=fsync"],
                             capture_output=True, text=True, check=True)  # fmt: skip
    finally:
        subprocess.run([*prefix, "rm", "-f", str(target)], check=False)
    seconds = float(re.search(r"copied, ([\d.]+) s", res.stderr).group(1))  # type: ignore[union-attr]
    return mib * MiB / seconds / 1e6


def fio_randwrite(directory: Path, runtime: float, prefix: Sequence[str] = ()) -> dict[str, float]:
    res = subprocess.run(
        [*prefix, "fio", "--name=r", "--rw=randwrite", "--bs=4k", "--size=64m", "--fsync=1",
         f"--runtime={runtime:g}", "--time_based", "--ioengine=psync", f"--directory={directory}",
         "--unlink=1", "--output-format=json"], capture_output=True, text=True, check=True,
    )  # fmt: skip
    job = json.loads(res.stdout[res.stdout.index("{") :])["jobs"][0]
    pct = job["write"]["clat_ns"]["percentile"]
    sync = job.get("sync", {}).get("lat_ns", {}).get("percentile", {})
    return {
        "iops": job["write"]["iops"], "ios": job["write"]["total_ios"],
        "p50": pct["50.000000"] / 1000, "p99": pct["99.000000"] / 1000,
        "sync_p50": sync.get("50.000000", 0) / 1000, "sync_p99": sync.get("99.000000", 0) / 1000,
    }  # fmt: skip
