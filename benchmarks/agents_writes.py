"""benchmarks/agents.py (1): writes through the agents' data planes against local."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.agents_site import Bench, CpuMeter  # sets the path first
from benchmarks.iobench import dd_fsync, fio_randwrite

# -- (1) writes ----------------------------------------------------------------------------
Runs = dict[str, list[dict[str, float]]]  # "local"/"replicated" -> each run's numbers


def bench_writes(b: Bench, reps: int, runtime: float, dd_reps: int, dd_mib: int) -> dict[str, Any]:
    site = b.site
    t0 = time.monotonic()
    site.start()
    site.wait_pair("node1", timeout=90)
    print(f"  pair PRIM/SECOND {time.monotonic() - t0:.1f} s after the agents started")
    ns = site.nsenter("node1")
    local = b.base / "node1" / "local"  # same filesystem as node1/data/modules/web/copy
    local.mkdir()
    meter = CpuMeter(site)
    where = {"local": local, "replicated": site.www}

    def pairs(n: int, run: Callable[[Path], dict[str, float]], label: str) -> Runs:
        """n local+replicated pairs, back to back, the order alternating; CPU of each."""
        runs: Runs = {"local": [], "replicated": []}
        for rep in range(n):
            order = ("local", "replicated") if rep % 2 == 0 else ("replicated", "local")
            for w in order:
                before = meter.read()
                r = run(where[w])
                r.update(CpuMeter.delta(before, meter.read()))
                runs[w].append(r)
            print(
                f"  {label} {rep + 1}/{n}: " + describe(runs["local"][-1], runs["replicated"][-1])
            )
        return runs

    fio_runs = pairs(reps, lambda d: fio_randwrite(d, runtime, ns), "fio")
    for r in fio_runs["local"] + fio_runs["replicated"]:
        r["lat_p50"] = r["p50"] + r["sync_p50"]
        r["lat_p99"] = r["p99"] + r["sync_p99"]
    dd_runs = pairs(dd_reps, lambda d: {"mbs": dd_fsync(d, dd_mib, ns)}, "dd")
    held = (site.state("node1"), site.state("node2"))
    out = summarize_writes(fio_runs, dd_runs, dd_mib)
    out["pair_held"] = "yes" if held == (("PRIM", "READY"), ("SECOND", "READY")) else f"no: {held}"
    out["away"] = bench_peer_away(b, reps, runtime, ns)
    return out


def bench_peer_away(b: Bench, reps: int, runtime: float, ns: list[str]) -> dict[str, Any]:
    """The same fio loop once node2's agent stopped: node1 serves the module alone, its
    data plane only tracks changes -- what the FUSE path costs with no replication at all
    (the floor any replication through it starts from). Each run paired with a local one."""
    site = b.site
    b.planned_stop = time.strftime("%Y-%m-%d %H:%M:%S")  # the logs' own format, local time
    site.stop_agent("node2")
    site.wait_for(
        lambda: (site.module("node1") or {}).get("data_plane", {}).get("mode") == "track",
        "node1's data plane tracking alone", 60,
    )  # fmt: skip
    local = b.base / "node1" / "local"
    ratios, lat, runs = [], [], []
    for rep in range(reps):
        order = ("local", "away") if rep % 2 == 0 else ("away", "local")
        r = {w: fio_randwrite(local if w == "local" else site.www, runtime, ns) for w in order}
        ratios.append(r["away"]["iops"] / r["local"]["iops"] if r["local"]["iops"] else 0.0)
        lat.append((r["away"]["p50"] + r["away"]["sync_p50"])
                   / max(1.0, r["local"]["p50"] + r["local"]["sync_p50"]))  # fmt: skip
        runs.append(r)
        print(f"  fio, peer away {rep + 1}/{reps}: {r['local']['iops']:.0f} IOPS local, "
              f"{r['away']['iops']:.0f} through the mount alone")  # fmt: skip
    return {
        "iops_local": statistics.median(r["local"]["iops"] for r in runs),
        "iops_away": statistics.median(r["away"]["iops"] for r in runs),
        "iops_ratio": statistics.median(ratios),
        "lat_p50_away": statistics.median(r["away"]["p50"] + r["away"]["sync_p50"] for r in runs),
        "lat_p50_ratio": statistics.median(lat),
    }


def describe(loc: dict[str, float], rep: dict[str, float]) -> str:
    if "mbs" in loc:
        return f"1 MiB seq {loc['mbs']:.0f} MB/s local, {rep['mbs']:.0f} replicated"
    return f"4k write+fsync {loc['iops']:.0f} IOPS local, {rep['iops']:.0f} replicated"


GOALS = {"iops": (">=", 0.5), "lat_p50": ("<=", 2.0), "mbs": (">=", 0.7)}
ROWS = [
    ("iops", "4 KiB randwrite + fsync: IOPS"),
    ("lat_p50", "  write+fsync p50 (µs, sum)"),
    ("lat_p99", "  write+fsync p99 (µs, sum)"),
    ("p50", "    write p50 (µs)"),
    ("p99", "    write p99 (µs)"),
    ("sync_p50", "    fsync p50 (µs)"),
    ("sync_p99", "    fsync p99 (µs)"),
    ("mbs", "1 MiB seq, fsync at end (MB/s)"),
]


def summarize_writes(fio_runs: Runs, dd_runs: Runs, dd_mib: int) -> dict[str, Any]:
    out: dict[str, Any] = {"reps": len(fio_runs["local"]), "dd_reps": len(dd_runs["local"]),
                           "dd_mib": dd_mib, "metrics": {}}  # fmt: skip
    for key, _ in ROWS:
        runs = dd_runs if key == "mbs" else fio_runs
        loc = [r[key] for r in runs["local"]]
        rep = [r[key] for r in runs["replicated"]]
        ratios = [b / a if a else 0.0 for a, b in zip(loc, rep, strict=True)]
        out["metrics"][key] = {
            "local": statistics.median(loc),
            "replicated": statistics.median(rep),
            "ratio": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "ratios": [round(x, 3) for x in ratios],
        }
    fio, dd = fio_runs["replicated"], dd_runs["replicated"]
    whos = [k.removeprefix("cpu ") for k in dd[0] if k.startswith("cpu ")]
    out["cpu_replicated"] = {
        who: {
            "ms_per_mib": statistics.median(r[f"cpu {who}"] * 1e3 / dd_mib for r in dd),
            "us_per_op": statistics.median(r[f"cpu {who}"] * 1e6 / r["ios"] for r in fio),
        }
        for who in whos
    }
    for who in whos:
        if who != "machine":  # page faults: fresh pages for the data path's buffers
            out["cpu_replicated"][who]["faults_per_mib"] = statistics.median(
                r[f"faults {who}"] / dd_mib for r in dd
            )
    loc_machine = [r["cpu machine"] * 1e3 / dd_mib for r in dd_runs["local"]]
    out["cpu_local_machine_ms_per_mib"] = statistics.median(loc_machine)
    return out


def print_writes(res: dict[str, Any]) -> None:
    print(f"\n  writes: medians of {res['reps']} fio and {res['dd_reps']} dd pairs; ratio = "
          "replicated / local, median (min-max) of each pair's ratio")  # fmt: skip
    print(f"  {'':34}{'local':>10}{'replicated':>12}{'ratio':>8}{'(min-max)':>13}  goal")
    for key, label in ROWS:
        m = res["metrics"][key]
        goal = ""
        if key in GOALS:
            op, g = GOALS[key]
            ok = m["ratio"] >= g if op == ">=" else m["ratio"] <= g
            goal = f"{op} {g}x: {'met' if ok else 'NOT met'}"
        print(f"  {label:34}{m['local']:10.0f}{m['replicated']:12.0f}{m['ratio']:7.2f}x"
              f"  ({m['ratio_min']:.2f}-{m['ratio_max']:.2f})  {goal}")  # fmt: skip
    cpu = res["cpu_replicated"]
    print(f"\n  CPU while replicating (medians): {'ms / MiB (dd)':>14}{'µs / 4k write+fsync':>21}"
          f"{'page faults / MiB':>19}")  # fmt: skip
    for who in ("node1 data plane", "node1 agent", "node2 data plane", "node2 agent", "machine"):
        label = "whole machine (all processes)" if who == "machine" else who
        faults = f"{cpu[who]['faults_per_mib']:19.0f}" if "faults_per_mib" in cpu[who] else ""
        print(f"    {label:32}{cpu[who]['ms_per_mib']:14.2f}{cpu[who]['us_per_op']:21.0f}{faults}")
    print(f"    {'whole machine, writing locally':32}{res['cpu_local_machine_ms_per_mib']:14.2f}")
    print(f"  pair held through the writes: {res['pair_held']}")
    a = res["away"]
    print(f"  peer away (node1 alone, its data plane tracking only): 4 KiB write+fsync "
          f"{a['iops_local']:.0f} -> {a['iops_away']:.0f} IOPS ({a['iops_ratio']:.2f}x of "
          f"local), p50 {a['lat_p50_away']:.0f} µs ({a['lat_p50_ratio']:.2f}x of local): the "
          "FUSE path alone, before any replication")  # fmt: skip
