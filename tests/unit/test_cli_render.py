"""The CLI's text and JSON output (pure)."""

from __future__ import annotations

import json
import time

from node_agent.cli import render
from protos import mirrorpair_pb2 as pb

ADDRS = {"node1": "10.0.0.1:7700", "node2": "10.0.0.2:7700"}


def node(node_id: str, *modules: pb.ModuleStatus, **kw: object) -> pb.NodeStatus:
    return pb.NodeStatus(
        cluster_name="demo",
        node_id=node_id,
        version="0.1.0",
        peer_alive=True,
        links=[pb.LinkStatus(name="lan", up=True), pb.LinkStatus(name="direct", up=False)],
        modules=list(modules),
        **kw,
    )


def web(state: int, readiness: int = pb.READINESS_READY, **kw: object) -> pb.ModuleStatus:
    return pb.ModuleStatus(name="web", kind="app", state=state, readiness=readiness, **kw)


def test_status_table_both_nodes() -> None:
    results = {
        "node1": node(
            "node1",
            web(
                pb.STATE_PRIM,
                uptodate=True,
                vip="10.0.0.100/24",
                vip_held=True,
                last_rule="elected",
                reason="serving",
            ),
        ),
        "node2": node(
            "node2",
            web(
                pb.STATE_SECOND,
                pb.READINESS_TRANSIENT,
                vip="10.0.0.100/24",
                resync=pb.ResyncProgress(active=True, bytes_done=1, bytes_total=4, eta_s=12),
            ),
        ),
    }
    text = render.render_status(results, ADDRS, "demo")
    assert text.startswith("Cluster demo")
    assert "lan up, direct DOWN" in text and "not configured" in text
    assert "Module web  (VIP 10.0.0.100/24 held by node1)" in text
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith("  node")}
    assert rows["node1"].split()[1:4] == ["PRIM", "ready", "uptodate"]
    assert "elected" in rows["node1"] and "serving" in rows["node1"]
    assert "transient" in rows["node2"] and "not uptodate" in rows["node2"]
    assert "resync 25% ETA 12s" in rows["node2"]


def test_status_with_an_unreachable_node_and_a_missing_module() -> None:
    other = pb.ModuleStatus(name="db", kind="vm", state=pb.STATE_ALONE)
    results = {
        "node1": node("node1", web(pb.STATE_ALONE), other, witness_configured=True),
        "node2": RuntimeError("agent node2 at 10.0.0.2:7700 is unavailable: connection refused"),
    }
    text = render.render_status(results, ADDRS)
    assert "node2  10.0.0.2:7700  ERROR" in text
    assert "node2: ERROR agent node2 at 10.0.0.2:7700 is unavailable" in text
    assert "UNREACHABLE" in text  # the witness
    assert text.count("agent not answering") == 2  # one row per module
    assert "Module db  (no VIP)" in text


def test_status_flags() -> None:
    m = web(
        pb.STATE_ALONE,
        degraded=True,
        split_brain=True,
        checkers=[pb.CheckerStatus(name="port", ok=False)],
    )
    results = {"node1": node("node1", m), "node2": node("node2")}
    text = render.render_status(results, ADDRS)
    assert "SPLIT-BRAIN, degraded, checker port failing" in text
    assert "NOT CONFIGURED" in text  # node2 does not have web


def test_vip_held_by_both_is_shouted() -> None:
    both = {
        n: node(n, web(pb.STATE_ALONE, vip="10.0.0.100/24", vip_held=True))
        for n in ("node1", "node2")
    }
    assert "held by node1 AND node2 (both!)" in render.render_status(both, ADDRS)


def test_status_document_is_stable_json() -> None:
    results = {"node1": node("node1", web(pb.STATE_PRIM)), "node2": OSError("down")}
    doc = render.status_document(results, ADDRS, "demo")
    assert json.loads(json.dumps(doc)) == doc
    assert doc["cluster"] == "demo" and doc["modules"] == ["web"]
    n1, n2 = doc["nodes"]["node1"], doc["nodes"]["node2"]
    assert n1["reachable"] and n1["status"]["modules"][0]["state"] == "PRIM"
    assert n1["status"]["modules"][0]["uptodate"] is False  # defaults are present
    assert n1["status"]["modules"][0]["peer_state"] is None  # unspecified: null
    assert n2 == {"address": ADDRS["node2"], "reachable": False, "error": "down", "status": None}


def test_json_values_are_plain() -> None:
    """Enums by short name, 64-bit counters as numbers (protobuf's own JSON quotes them)."""
    status = pb.NodeStatus(
        node_id="node1",
        heartbeats_rejected=2**40,
        links=[pb.LinkStatus(name="lan", up=True, received=7, last_heard_age_s=0.25)],
        modules=[
            pb.ModuleStatus(
                name="web",
                state=pb.STATE_SECOND,
                readiness=pb.READINESS_NOT_READY,
                peer_state=pb.STATE_PRIM,
                resync=pb.ResyncProgress(active=True, bytes_done=5, bytes_total=10),
                generations=["g1", "g2"],
            )
        ],
    )
    doc = render.message_dict(status)
    assert doc["heartbeats_rejected"] == 2**40
    assert doc["links"] == [
        {"name": "lan", "local_address": "", "peer_address": "", "up": True,
         "last_heard_age_s": 0.25, "received": 7, "rejected": 0, "gap_max_s": 0.0,
         "gap_p99_s": 0.0, "lateness_max_s": 0.0, "lateness_p99_s": 0.0}
    ]  # fmt: skip
    (m,) = doc["modules"]
    assert (m["state"], m["readiness"], m["peer_state"]) == ("SECOND", "NOT_READY", "PRIM")
    assert m["peer_readiness"] is None
    assert m["resync"]["bytes_done"] == 5 and m["resync"]["bytes_total"] == 10
    assert m["generations"] == ["g1", "g2"]
    text = json.dumps(doc)
    assert "STATE_" not in text and "READINESS_" not in text and '"7"' not in text


def entry(t: float, node_id: str, seq: int, message: str = "m", **kw: object) -> pb.LogEntry:
    return pb.LogEntry(time=t, node_id=node_id, seq=seq, message=message, level="INFO", **kw)


def test_merge_logs_by_time_and_limit() -> None:
    per_node = {
        "node1": [entry(1.0, "node1", 1), entry(3.0, "node1", 2)],
        "node2": [entry(2.0, "node2", 1), entry(3.0, "node2", 2)],
    }
    merged = render.merge_logs(per_node)
    assert [(e.time, e.node_id) for e in merged] == [
        (1.0, "node1"),
        (2.0, "node2"),
        (3.0, "node1"),
        (3.0, "node2"),
    ]
    assert [e.time for e in render.merge_logs(per_node, limit=2)] == [3.0, 3.0]


def test_format_log_entry() -> None:
    t = time.mktime((2026, 1, 2, 3, 4, 5, 0, 0, -1)) + 0.25
    e = entry(
        t,
        "node1",
        7,
        "peer lost",
        module="web",
        old_state=pb.STATE_PRIM,
        new_state=pb.STATE_ALONE,
        cause="peer-lost",
        who="admin (cert admin)",
    )
    line = render.format_log_entry(e)
    assert line.startswith("2026-01-02 03:04:05.250 node1 INFO    web: peer lost")
    assert line.endswith("[PRIM -> ALONE; cause peer-lost; by admin (cert admin)]")
    # A message that already tells the transition is not repeated.
    e.message = "PRIM/READY -> ALONE/READY: peer lost"
    assert "[cause peer-lost" in render.format_log_entry(e)


def test_table_alignment() -> None:
    lines = render.table([["A", "BB"], ["ccc", "d"]], indent="  ")
    assert lines == ["  A    BB", "  ccc  d"]


def test_a_configuration_mismatch_is_shouted() -> None:
    same = {n: node(n, web(pb.STATE_PRIM), config_version=3) for n in ADDRS}
    assert "MISMATCH" not in render.render_status(same, ADDRS, "demo")
    differ = {"node1": node("node1", config_version=3), "node2": node("node2", config_version=4)}
    text = render.render_status(differ, ADDRS, "demo")
    assert "  CONFIGURATION MISMATCH: node1 runs version 3, node2 runs version 4" in text


def test_a_peer_of_another_build_or_protocol_is_shown() -> None:
    from node_agent import VERSION
    from node_agent.engine.status import peer_build_fields
    from node_agent.protocol import PROTOCOL, PeerBuild, Protocol

    same = peer_build_fields(PeerBuild(PROTOCOL, VERSION))
    assert same["version_mismatch"] == "" and same["peer_version"] == VERSION
    st = {n: node(n, **same) for n in ADDRS}
    assert "MISMATCH" not in render.render_status(st, ADDRS, "demo")
    older = peer_build_fields(PeerBuild(Protocol(PROTOCOL.major, 0), ""))
    st = {"node1": node("node1"), "node2": node("node2", **older)}
    text = render.render_status(st, ADDRS, "demo")
    assert "  VERSION MISMATCH seen by node2: the peer runs an older build" in text, text
    assert "compatible" in text and "PROTOCOL MISMATCH" not in text
    doc = render.status_document(st, ADDRS, "demo")
    assert doc["nodes"]["node2"]["status"]["peer_protocol"] == f"{PROTOCOL.major}.0"
    assert doc["nodes"]["node2"]["status"]["protocol"] == str(PROTOCOL)
    refused = peer_build_fields(PeerBuild(Protocol(PROTOCOL.major + 1, 0), "9.0.0"))
    text = render.render_status({"node1": node("node1", **refused)}, ADDRS, "demo")
    other = PROTOCOL.major + 1
    assert f"  PROTOCOL MISMATCH seen by node1: the peer speaks protocol {other}.0" in text
    assert "its heartbeats and replication are refused" in text


def test_link_timings_per_node_and_link_and_none_made_up() -> None:
    measured = pb.LinkStatus(name="lan", up=True, last_heard_age_s=0.12, gap_p99_s=0.51,
                             gap_max_s=0.62, lateness_p99_s=0.04, lateness_max_s=1.5)  # fmt: skip
    silent = pb.LinkStatus(name="direct", up=False, last_heard_age_s=-1)
    fresh = pb.LinkStatus(name="lan", up=True, last_heard_age_s=0.3)  # no samples yet
    n1 = pb.NodeStatus(node_id="node1", links=[measured, silent])
    n2 = pb.NodeStatus(node_id="node2", links=[fresh])
    text = render.render_status({"node1": n1, "node2": n2}, ADDRS, "demo")
    assert "Heartbeat links" in text and "synced clocks" in text
    rows = [line.split() for line in text.splitlines() if line.startswith("  node")]
    assert ["node1", "lan", "up", "120", "ms", "ago", "510", "ms", "620", "ms", "40", "ms",
            "1.50", "s"] in rows  # fmt: skip
    assert ["node1", "direct", "DOWN", "never", "-", "-", "-", "-"] in rows
    assert ["node2", "lan", "up", "300", "ms", "ago", "-", "-", "-", "-"] in rows


def test_no_link_known_no_link_timing_section() -> None:
    text = render.render_status({"node1": RuntimeError("refused")}, ADDRS, "demo")
    assert "Heartbeat links" not in text


def test_a_peer_alive_only_on_its_word_is_named_so() -> None:
    heard = render.render_status({"node1": node("node1")}, ADDRS, "demo")
    assert "alive" in heard and "restarting" not in heard
    st = {"node1": node("node1", peer_leaving_s=14.2)}
    text = render.render_status(st, ADDRS, "demo")
    assert "agent restarting (14 s left)" in text, text
    assert render.status_document(st, ADDRS, "demo")["nodes"]["node1"]["status"][
        "peer_leaving_s"] == 14.2  # fmt: skip
