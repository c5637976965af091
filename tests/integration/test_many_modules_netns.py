"""64 application modules on one pair (issue 13, point 3; DESIGN §4): real agents in the
netns topology (tests/integration/netns.py), heartbeats on both links (lan, direct).

Each module has a name as long as the configuration allows (64 bytes) and a history
of 31 generations on node1; node2 has the same for even modules and an older prefix
(20) for odd ones. node1 starts first and serves every module alone (32 generations),
then node2 joins: the first pulses carry whole histories, cut in chunks (32 ids do
not fit one datagram next to such a name), then summaries only. Every datagram on the
wire is captured on node2 and checked against the budget. All modules become PRIM on
node1 and SECOND on node2, node2's histories equal node1's (a resync copies the history
it received: any error in completing one would show here), then node1's agent is
SIGKILLed and every module goes ALONE on node2. Modules are unreplicated ``sleep``
commands: 64 FUSE mounts would test replication, not heartbeats.

The timeout is the product's default (3 s), not the harness's 1.5 s: an agent starting
64 modules on a loaded CI machine can be busy for more than 1.5 s, and a module that
hears nothing from its peer for the timeout rightly starts alone -- two agents started
together would then race, which is not what this test is about.

Timings are printed (pulse gaps and lateness per link, from the agents' LinkStatus;
the failover time); the only timing assertion is a generous sanity bound.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from node_agent.core import generations as gens
from node_agent.core.facts import Facts, save_facts
from node_agent.heartbeat.codec import decode
from node_agent.heartbeat.split import BUDGET
from tests.integration.cluster_netns import (
    HB_PORT,
    NODES,
    PULSE_MS,
    REPO,
    SECRET,
    NetnsCluster,
    cluster_toml,
)
from tests.integration.netns import Topology

pytestmark = pytest.mark.root

COUNT = 64
NAMES = [f"m{i:02d}-" + "x" * 60 for i in range(COUNT)]  # 64 bytes: the longest allowed
PAST = 31  # node1's history: its start as primary makes it 32 (MAX_HISTORY)
OLDER = 20  # node2's history of the odd modules: a prefix, so node1's is newer
TIMEOUT_MS = 3000
TIMEOUT_S = TIMEOUT_MS / 1000
STEADY_S = 3.0  # captured after pairing: summaries only


def module_toml(name: str) -> str:
    return f"""[[module]]
name = "{name}"
kind = "app"
preferred = "node1"
start = "sleep 100000 >/dev/null 2>&1 & echo $! > pid"
stop = "kill $(cat pid) 2>/dev/null; rm -f pid"
start_timeout_s = 15
stop_timeout_s = 10

"""


def seed_facts(base: Path) -> dict[str, tuple[str, ...]]:
    """Write each module's facts on both nodes (as an earlier life of the pair left them)."""
    past = tuple(gens.new_generation_id(1_700_000_000 + i, NODES[i % 2], i) for i in range(PAST))
    for i, name in enumerate(NAMES):
        for node in NODES:
            history = past if node == "node1" or i % 2 == 0 else past[:OLDER]
            save_facts(base / node / "data" / "modules" / name / "facts.json",
                       Facts(uptodate=True, generations=history))  # fmt: skip
    return {name: past for name in NAMES}


def modules(c: NetnsCluster, node: str) -> dict[str, dict[str, Any]]:
    st = c.status(node)
    return {m["name"]: m for m in st["modules"]} if st else {}


def all_in(c: NetnsCluster, node: str, state: str, readiness: str | None = None) -> bool:
    ms = modules(c, node)
    return len(ms) == COUNT and all(
        m["state"] == f"STATE_{state}"
        and (readiness is None or m["readiness"] == f"READINESS_{readiness}")
        for m in ms.values()
    )


def spread(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]
    return f"max {ordered[-1] * 1000:.1f} ms p99 {p99 * 1000:.1f} ms"


def wire_report(records: list[dict[str, Any]], steady_from: float) -> tuple[int, list[str]]:
    """(largest datagram, report lines) of what node1 sent, as captured on node2: sizes
    and parts per pulse over the whole capture; pulse gaps and lateness (capture time
    minus sent_time: the network and the sender, not node2's agent) once steady."""
    sizes, pulses, whole = [], Counter[tuple[str, int, int]](), 0
    first: dict[tuple[str, int, int], float] = {}
    late: dict[str, list[float]] = {}
    for r in records:
        if not r["src"].endswith(".1"):
            continue
        data = base64.b64decode(r["data"])
        hb = decode(data, SECRET.encode())
        key = (hb.link, hb.boot_id, hb.seq)
        sizes.append(len(data))
        pulses[key] += 1
        first.setdefault(key, r["t"])
        whole += any(m.generations for m in hb.modules)
        if r["wall"] >= steady_from:
            late.setdefault(hb.link, []).append(r["wall"] - hb.sent_time)
    parts = sorted(pulses.values())
    lines = [
        f"node1 -> node2 on the wire: {len(sizes)} datagrams, {len(pulses)} pulses x links; "
        f"largest {max(sizes)} B (budget {BUDGET}), median {statistics.median(sizes):.0f} B; "
        f"datagrams per pulse min {parts[0]} / median {statistics.median(parts):.0f} / max "
        f"{parts[-1]}; {whole} datagrams carried (chunks of) whole histories"
    ]
    for link, values in sorted(late.items()):
        starts = sorted(t for (ln, _b, _s), t in first.items() if ln == link)
        gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
        steady = [g for g, t in zip(gaps, starts[1:], strict=False) if t >= starts[-1] - STEADY_S]
        lines.append(f"  steady, on {link}: pulse gap {spread(steady)}; lateness {spread(values)}")
    return max(sizes), lines


def test_64_modules_fail_over_together(
    topology: Topology, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    c = NetnsCluster(topology, tmp_path / "cluster")
    try:
        head = cluster_toml(c.base, timeout_ms=TIMEOUT_MS).split("[[module]]")[0]
        c.config.write_text(head + "".join(module_toml(n) for n in NAMES))
        seed_facts(c.base)
        c.start("node1")
        c.wait_for(lambda: all_in(c, "node1", "ALONE", "READY"), "64 ALONE on node1", 60)
        alone_s = time.monotonic() - started
        capture = tmp_path / "hb.jsonl"
        rec = topology.popen("node2", [sys.executable, "-m", "tests.integration.hb_capture",
                                       "capture", str(capture), "600", str(HB_PORT)],
                             cwd=REPO)  # fmt: skip
        try:
            time.sleep(0.5)  # the packet socket is open before node2's first heartbeat
            joined = time.monotonic()
            c.start("node2")
            c.wait_for(lambda: all_in(c, "node1", "PRIM", "READY"), "64 PRIM on node1", 60)
            c.wait_for(lambda: all_in(c, "node2", "SECOND", "READY"), "64 SECOND on node2", 30)
            paired_s = time.monotonic() - joined
            one, two = modules(c, "node1"), modules(c, "node2")
            for name in NAMES:
                assert len(one[name]["generations"]) == gens.MAX_HISTORY
                assert two[name]["generations"] == one[name]["generations"], name
            steady_from = time.time() + 0.5
            time.sleep(STEADY_S)
        finally:
            rec.terminate()  # it writes a line per datagram: the file is whole but its end
            rec.wait(10)
        records = []
        for line in capture.read_text().splitlines():
            with contextlib.suppress(ValueError):  # ... the last line, maybe cut
                records.append(json.loads(line))
        largest, lines = wire_report(records, steady_from)
        lines.insert(0, f"node1 alone after {alone_s:.1f} s; node2 started and all 64 "
                     f"PRIM/SECOND {paired_s:.1f} s later")  # fmt: skip
        for node in NODES:
            for link in c.status(node)["links"]:
                lines.append(  # the agent's view, since it started
                    f"{node} hears on {link['name']}: {int(link['received'])} datagrams; pulse "
                    f"gap max {link['gap_max_s'] * 1000:.0f} ms p99 "
                    f"{link['gap_p99_s'] * 1000:.0f} ms (pulse {PULSE_MS} ms); lateness max "
                    f"{link['lateness_max_s'] * 1000:.1f} ms p99 "
                    f"{link['lateness_p99_s'] * 1000:.1f} ms"
                )
                assert link["up"] and int(link["rejected"]) == 0, link
                # A sanity bound, not a performance requirement.
                assert link["gap_max_s"] < 2 * TIMEOUT_S and link["lateness_max_s"] < 5, link
        assert largest <= BUDGET

        killed = time.monotonic()
        c.kill_agent("node1")
        c.wait_for(lambda: all_in(c, "node2", "ALONE", "READY"), "64 ALONE on node2", 30)
        lines.append(f"SIGKILL of node1's agent -> 64 modules ALONE/READY on node2 in "
                     f"{time.monotonic() - killed:.1f} s (timeout {TIMEOUT_S:g} s)")  # fmt: skip
        after = modules(c, "node2")
        assert all(m["last_rule"] == "peer-lost" for m in after.values())
        lines.append(f"test body {time.monotonic() - started:.1f} s")
        with capsys.disabled():  # shown in every run's output, not only on failure
            print("\n" + "\n".join(lines))
    finally:
        c.close()
