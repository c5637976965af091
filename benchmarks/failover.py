"""Failover time (DESIGN §9): SIGKILL of the primary (agent + app) -> VIP answers on the survivor.

Two real agents in network namespaces (tests/integration/netns.py, the same harness as the
integration tests). Each run: the pair is PRIM/SECOND Ready with the VIP answering from the
primary; at t0 the primary's agent is SIGKILLed, then its app, and its LAN port and the
direct link are cut (a dead server answers on no network); t1 is when an HTTP GET of
http://10.77.0.100:8080/ from the client namespace first returns the survivor's name
(polled every 10 ms). The dead node then comes back (it rejoins as secondary) and the next
run kills the other node, so runs alternate.

    sudo .venv/bin/python -m benchmarks.failover [--runs 10] [--pulse-ms 250] [--timeout-ms 1500]

Prints each run and min / median / max, with the configured heartbeat timeout beside
them. "ALONE after" (the survivor's state_since minus the kill time) can be up to one pulse
below the timeout: the silence is counted from the last heartbeat heard, which predates the
kill. What follows ALONE is VIP + gratuitous ARP + app start (+ up to ~50 ms of polling).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.integration.cluster_netns import MODULE, NODES, VIP_URL, NetnsCluster
from tests.integration.netns import Topology, cleanup_stale


def one_run(c: NetnsCluster, primary: str) -> tuple[float, float]:
    """Kill ``primary``; return (seconds to ALONE on the survivor, seconds to VIP answering)."""
    survivor = NODES[1] if primary == NODES[0] else NODES[0]
    c.wait_pair(primary, timeout=30)
    client = c.probe("client")
    wall0, t0 = time.time(), time.monotonic()
    c.power_off(primary)
    reply = client.ask(timeout=40, op="http_until", url=VIP_URL, expect=f"{survivor}\n",
                       within=30, step=0.01)  # fmt: skip
    if "t" not in reply:
        raise RuntimeError(f"run failed: {reply.get('error')}\n{c.tail(survivor)}")
    m = c.module(survivor)  # ALONE since the takeover (readiness changes keep state_since)
    detect = float(m["state_since"]) - wall0 if m and m["state"] == "STATE_ALONE" else float("nan")
    c.power_on(primary)
    return detect, reply["t"] - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=10, help="number of failovers (default 10)")
    p.add_argument("--pulse-ms", type=int, default=250, help="heartbeat pulse (default 250)")
    p.add_argument("--timeout-ms", type=int, default=1500, help="peer timeout (default 1500)")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("failover benchmark: needs root (network namespaces)", file=sys.stderr)
        return 2
    cleanup_stale()
    times: list[float] = []
    timeout_s = args.timeout_ms / 1000
    print(f"failover of module {MODULE!r}: SIGKILL primary agent+app -> VIP answers HTTP")
    print(f"heartbeat pulse {args.pulse_ms} ms, timeout {args.timeout_ms} ms; runs {args.runs}")
    print(f"{'run':>3}  {'killed':6}  {'ALONE after':>11}  {'VIP answers after':>17}")
    with (
        tempfile.TemporaryDirectory(prefix="mp-bench-") as tmp,
        Topology() as topo,
        NetnsCluster(topo, Path(tmp), pulse_ms=args.pulse_ms, timeout_ms=args.timeout_ms) as c,
    ):
        c.start()
        for i in range(args.runs):
            primary = NODES[i % 2]
            detect, failover = one_run(c, primary)
            times.append(failover)
            print(f"{i + 1:>3}  {primary:6}  {detect:>10.3f}s  {failover:>16.3f}s", flush=True)
    print(
        f"failover time over {len(times)} runs: min {min(times):.3f} s, "
        f"median {statistics.median(times):.3f} s, max {max(times):.3f} s   "
        f"(heartbeat timeout {timeout_s:.3f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
