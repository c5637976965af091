"""Replication through the real agents and their data planes (issue 13, "Measure").

    sudo .venv/bin/python -m benchmarks.agents [--quick] [--keep]
        [--reps 3] [--fio-runtime 10] [--dd-reps 6] [--dd-mib 512] [--placements shared,own]
        [--modules 64] [--writers 8] [--hb-seconds 30] [--hb-placements ...] [--pair-timeout S]

(from the repository's root; it runs this checkout: PYTHONPATH is set for every process
it starts). A two-server site as the integration tests build it
(tests/integration/site.py: two agents, each in a network and a mount namespace of its
own, configured from resources/config/cluster.example.toml; module "web" replicates
<base>/srv/www). Each module's data plane (python -m node_agent.dataplane) owns its FUSE
mount and stream.

(1) Writes, from inside node1's namespaces, on a plain directory of node1 (the same
    filesystem as node1's copy of the module) and on the replicated mount, back to back,
    the order alternating between pairs (each pair gives a ratio, in the same minute):
      fio --rw=randwrite --bs=4k --fsync=1 --ioengine=psync, time-based
          -> IOPS, write and fsync latency p50/p99 (write+fsync: the sum of the two)
      dd if=/dev/zero bs=1M count=N conv=fsync (fsync at the end)       -> MB/s
    and the CPU time (utime + stime from /proc/PID/stat) of each node's data plane and
    agent over each replicated run, per MiB (dd) and per write+fsync (fio); the whole
    machine's (/proc/stat: other jobs on the machine count too) for comparison.
    Then node2's agent stops and the fio pairs run again ("peer away"): node1's data
    plane only tracks changes, so this is the FUSE path alone, before any replication.
(2) Heartbeat lateness with --modules modules replicating: another site with that many
    modules (web + the others, each replicating a directory of its own), all PRIM on
    node1 / SECOND on node2. Nothing inside the agent records lateness, so each node's
    GetStatus (per heartbeat link: the age of the last accepted heartbeat, and how many
    were accepted) is polled every 50 ms from the client namespace, first idle, then
    while fio writes into --writers of the mounts. A heartbeat's arrival is the status's
    time minus that age (the agent's clock: the poll's own delay does not count);
    lateness = the gap since the previous arrival on the same link minus the pulse.
    "max silence" is the largest age seen (a 50 ms sample: up to 50 ms short).

Both run twice, for two placements of the secondary's copy (node2's data dir):
  shared: on the same filesystem as node1's (one disk: both copies share its bandwidth);
  own:    ext4 on a loop device backed by a file in /dev/shm: a filesystem and a device
          of its own, as on a real pair, with a journal and real fsyncs (tmpfs would make
          the secondary's fsync free).

Prints tables and, last, one JSON line. --quick: 2 fio pairs of 3 s, 3 dd pairs of 128
MiB, 16 modules, 8 s phases: about 2 minutes. The default run takes about 10.
Everything is removed on exit, Ctrl-C or error (namespaces, mounts, loop devices,
processes); --keep leaves the site directories (logs) under /var/tmp.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from benchmarks.agents_heartbeats import bench_heartbeats, print_heartbeats, sample_links_main
from benchmarks.agents_site import PLACEMENTS, Bench  # (imported first by each: the path)
from benchmarks.agents_writes import bench_writes, print_writes
from tests.integration.netns import cleanup_stale


# -- main ----------------------------------------------------------------------------------
def run_placement(placement: str, args: argparse.Namespace) -> dict[str, Any]:
    res: dict[str, Any] = {"placement": PLACEMENTS[placement]}
    print(f"\n=== secondary's copy: {PLACEMENTS[placement]}")
    if args.reps > 0:
        with Bench(placement, f"{placement}-web", args.keep) as b:
            res["node2_data"] = b.where
            print(f"  node2's data dir: {b.where}")
            res["writes"] = bench_writes(b, args.reps, args.fio_runtime, args.dd_reps, args.dd_mib)
        res["writes"]["log_notes"] = b.notes
        print_writes(res["writes"])
    if placement in args.hb_placements and args.modules > 0:
        print(f"\n  heartbeats: a site with {args.modules} modules ...")
        with Bench(placement, f"{placement}-hb", args.keep) as b:
            res["heartbeat"] = bench_heartbeats(b, args.modules, args.writers,
                                                args.hb_seconds, args.pair_timeout)  # fmt: skip
        res["heartbeat"]["log_notes"] = b.notes
        print_heartbeats(res["heartbeat"])
    for what in ("writes", "heartbeat"):
        notes = res.get(what, {}).get("log_notes")
        if notes:
            print(f"\n  warnings and errors in the logs ({what} site):")
            for n in notes[:12]:
                print(f"    {n}")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sample-links", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true",
                    help="2 fio pairs of 3 s, 3 dd pairs of 128 MiB, 16 modules, 8 s "
                    "heartbeat phases (about 2 minutes)")  # fmt: skip
    ap.add_argument(
        "--reps", type=int, help="local+replicated fio pairs (default 3; 0: no writes site)"
    )
    ap.add_argument("--fio-runtime", type=float, help="seconds per fio run (default 10)")
    ap.add_argument("--dd-reps", type=int, help="local+replicated dd pairs (default 6)")
    ap.add_argument("--dd-mib", type=int, help="MiB per sequential run (default 512)")
    ap.add_argument("--placements", default="shared,own",
                    help="where the secondary's copy lives: shared, own, or both "
                    "(default)")  # fmt: skip
    ap.add_argument("--modules", type=int,
                    help="modules of the heartbeat site (default 64; 0: skip it)")  # fmt: skip
    ap.add_argument("--hb-placements", help="placements that get the heartbeat site (default: "
                    "all of --placements)")  # fmt: skip
    ap.add_argument("--writers", type=int, default=8, help="mounts written to (default 8)")
    ap.add_argument("--hb-seconds", type=float, help="seconds per heartbeat phase (default 30)")
    ap.add_argument("--pair-timeout", type=float,
                    help="seconds to wait for every module to pair (default 120 + 4 per "
                    "module)")  # fmt: skip
    ap.add_argument("--keep", action="store_true", help="keep the site directories (logs)")
    args = ap.parse_args()
    if args.sample_links:
        seconds, pki, *targets = args.sample_links
        return sample_links_main(float(seconds), Path(pki), targets)
    quick = {"reps": 2, "fio_runtime": 3, "dd_reps": 3, "dd_mib": 128, "modules": 16,
             "hb_seconds": 8}  # fmt: skip
    full = {"reps": 3, "fio_runtime": 10, "dd_reps": 6, "dd_mib": 512, "modules": 64,
            "hb_seconds": 30}  # fmt: skip
    for k, v in (quick if args.quick else full).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.pair_timeout is None:
        args.pair_timeout = 120 + 4 * args.modules
    placements = [p for p in args.placements.split(",") if p]
    args.hb_placements = (args.hb_placements or args.placements).split(",")
    if set(placements) - set(PLACEMENTS):
        ap.error(f"--placements: {', '.join(PLACEMENTS)}")
    if os.geteuid() != 0:
        sys.exit("needs root (network and mount namespaces, FUSE, loop devices)")
    if args.reps and args.dd_reps < 1:
        ap.error(
            "--dd-reps must be at least 1 when --reps is not 0 (the CPU per MiB comes from dd)"
        )
    for tool in ("fio", "dd", "nsenter", "unshare", "mkfs.ext4", "losetup", "findmnt"):
        if shutil.which(tool) is None:
            sys.exit(f"needs {tool}")
    # SIGTERM unwinds like Ctrl-C: every with-block below cleans up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cleanup_stale()
    load = os.getloadavg()
    machine = {"cpus": os.cpu_count(), "loadavg_at_start": [round(x, 2) for x in load]}
    print(f"{os.cpu_count()} CPUs, load average {load[0]:.2f} at start; "
          f"{args.reps} fio pairs of {args.fio_runtime:g} s, {args.dd_reps} dd pairs of "
          f"{args.dd_mib} MiB; heartbeat "
          f"site: {args.modules} modules, {args.writers} written, {args.hb_seconds:g} s per "
          "phase")  # fmt: skip
    results = {p: run_placement(p, args) for p in placements}
    print(json.dumps({"benchmark": "agents", "machine": machine, "args": vars(args),
                      "placements": results}, default=str))  # fmt: skip


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the with-blocks have cleaned up on the way out
        sys.exit("interrupted")
