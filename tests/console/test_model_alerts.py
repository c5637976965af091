"""Alerts from successive snapshots: failover, planned moves, degraded, split brain."""

from __future__ import annotations

from console.model.alerts import AlertDetector, AlertKind, Severity
from console.model.cluster import ClusterModel
from tests.console.builders import module, node

ADDR = {"node1": "127.0.0.1:1", "node2": "127.0.0.2:2"}


def test_failover_is_detected_across_an_unreachable_phase() -> None:
    m, d = ClusterModel("site", ADDR), AlertDetector()
    m.apply_snapshot("node1", node("node1", module()), 1.0)
    m.apply_snapshot("node2", node("node2", module(state="SECOND")), 1.0)
    assert d.update(m, 1.0) == []
    m.apply_unreachable("node1", "connection refused", 2.0)
    m.apply_snapshot("node2", node("node2", module(state="SECOND", peer=("PRIM", "Ready"))), 2.0)
    (lost,) = d.update(m, 2.0)
    assert lost.kind is AlertKind.NODE_LOST and lost.node == "node1"
    m.apply_snapshot("node2", node("node2", module(state="ALONE", last_rule="peer-lost")), 3.0)
    (fail,) = d.update(m, 3.0)
    assert fail.kind is AlertKind.FAILOVER and fail.severity is Severity.CRITICAL
    assert fail.title == "Failover: web now runs on node2"
    assert "from node1 to node2 (rule: peer-lost)" in fail.message
    assert d.update(m, 4.0) == []  # reported once


def test_swap_is_a_planned_move() -> None:
    m, d = ClusterModel("site", ADDR), AlertDetector()
    m.apply_snapshot("node1", node("node1", module()), 1.0)
    m.apply_snapshot("node2", node("node2", module(state="SECOND")), 1.0)
    d.update(m, 1.0)
    m.apply_snapshot("node1", node("node1", module(state="SECOND", last_rule="swap")), 2.0)
    m.apply_snapshot("node2", node("node2", module(state="PRIM", last_rule="swap")), 2.0)
    (moved,) = d.update(m, 2.0)
    assert moved.kind is AlertKind.MOVED and moved.severity is Severity.INFO


def test_transient_two_primaries_or_none_is_not_a_failover() -> None:
    m, d = ClusterModel("site", ADDR), AlertDetector()
    m.apply_snapshot("node1", node("node1", module()), 1.0)
    m.apply_snapshot("node2", node("node2", module(state="SECOND")), 1.0)
    d.update(m, 1.0)
    m.apply_snapshot("node1", node("node1", module(state="STOP", readiness="NotReady")), 2.0)
    assert d.update(m, 2.0) == []
    m.apply_snapshot("node1", node("node1", module()), 3.0)
    assert d.update(m, 3.0) == []  # back on node1: no move


def test_degraded_and_split_brain_rising_edges() -> None:
    m, d = ClusterModel("site", ADDR), AlertDetector()
    m.apply_snapshot("node1", node("node1", module()), 1.0)
    m.apply_snapshot("node2", node("node2", module(state="SECOND")), 1.0)
    d.update(m, 1.0)
    m.apply_snapshot(
        "node1",
        node("node1", module(state="ALONE", degraded=True, reason="replication failed")),
        2.0,
    )
    (deg,) = d.update(m, 2.0)
    assert deg.kind is AlertKind.DEGRADED and deg.node == "node1"
    assert deg.message == "replication failed"
    assert d.update(m, 3.0) == []
    m.apply_snapshot(
        "node2", node("node2", module(state="WAIT", readiness="NotReady", split_brain=True)), 4.0
    )
    (sb,) = d.update(m, 4.0)
    assert sb.kind is AlertKind.SPLIT_BRAIN and sb.severity is Severity.CRITICAL
    m.apply_unreachable("node2", "gone", 5.0)  # unknown: no new alert when it comes back
    d.update(m, 5.0)
    m.apply_snapshot(
        "node2", node("node2", module(state="WAIT", readiness="NotReady", split_brain=True)), 6.0
    )
    assert [a.kind for a in d.update(m, 6.0)] == [AlertKind.NODE_BACK]


def test_console_opened_on_a_degraded_cluster_alerts_at_once() -> None:
    m, d = ClusterModel("site", ADDR), AlertDetector()
    m.apply_snapshot("node1", node("node1", module(state="ALONE", degraded=True)), 1.0)
    assert [a.kind for a in d.update(m, 1.0)] == [AlertKind.DEGRADED]
