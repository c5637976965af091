"""Alerts from successive snapshots: failover, planned moves, degraded, split brain."""

from __future__ import annotations

import pytest

from console.model.alerts import AlertDetector, AlertKind, Severity
from console.model.cluster import ClusterModel
from console.model.history import LogRecord, record_from_pb
from protos import mirrorpair_pb2 as pb
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
    assert d.update(m, 1.0) == []  # node2 still connecting: why is not known yet
    m.apply_unreachable("node2", "connection refused", 1.5)
    assert [a.kind for a in d.update(m, 1.5)] == [AlertKind.DEGRADED]


def settled_pair() -> tuple[ClusterModel, AlertDetector]:
    m, d = ClusterModel("site", ADDR), AlertDetector()
    m.apply_snapshot("node1", node("node1", module()), 1.0)
    m.apply_snapshot("node2", node("node2", module(state="SECOND")), 1.0)
    assert d.update(m, 1.0) == []
    return m, d


def left_primary(cause: str, who: str = "", new_state: int = pb.STATE_STOP) -> LogRecord:
    return record_from_pb(
        pb.LogEntry(seq=9, time=2.0, node_id="node1", module="web", level="INFO",
                    message="PRIM/TRANSIENT -> STOP/NOT_READY: stopped", old_state=pb.STATE_PRIM,
                    new_state=new_state, cause=cause, who=who)
    )  # fmt: skip


def test_a_planned_stop_of_the_primary_is_not_a_failover() -> None:
    m, d = settled_pair()
    stopped = module(state="STOP", readiness="NotReady", last_rule="stop by root@desk")
    m.apply_snapshot("node1", node("node1", stopped), 2.0)
    assert d.update(m, 2.0) == []
    m.apply_snapshot("node2", node("node2", module(state="ALONE", last_rule="peer-not-primary")),
                     3.0)  # fmt: skip
    (moved,) = d.update(m, 3.0)
    assert moved.kind is AlertKind.MOVED and moved.severity is Severity.INFO
    assert moved.message == (
        "web now runs on node2 (node1 was stopped by root@desk); "
        "node2 serves it without a secondary"
    )


def test_a_stop_the_status_stream_skipped_is_read_from_the_transitions() -> None:
    # Operator's stopstart: node1 stopped, node2 took over, node1 started again and is
    # resyncing by the time its next status arrives. Its log entries say what happened.
    m, d = settled_pair()
    d.note_transitions([left_primary("stopstart", "admin@desk")])
    rejoining = module(state="SECOND", readiness="Transient", last_rule="peer-primary")
    m.apply_snapshot("node1", node("node1", rejoining), 3.0)
    m.apply_snapshot("node2", node("node2", module(state="ALONE", last_rule="peer-not-primary")),
                     3.0)  # fmt: skip
    (moved,) = d.update(m, 3.0)
    assert moved.kind is AlertKind.MOVED
    assert "node1 was stopped and started again by admin@desk" in moved.message


def test_a_checker_that_fails_the_primary_over_is_a_failover() -> None:
    m, d = settled_pair()
    d.note_transitions([left_primary("checker")])
    failed = module(state="STOP", readiness="NotReady", last_rule="checker")
    m.apply_snapshot("node1", node("node1", failed), 2.0)
    m.apply_snapshot("node2", node("node2", module(state="ALONE", last_rule="peer-not-primary")),
                     2.0)  # fmt: skip
    (fail,) = d.update(m, 2.0)
    assert fail.kind is AlertKind.FAILOVER and fail.severity is Severity.CRITICAL


@pytest.mark.parametrize("degraded", [False, True], ids=["agent flags nothing", "degraded"])
def test_a_stopped_secondary_is_not_reported_as_failed_replication(degraded: bool) -> None:
    # The agent no longer flags the primary degraded when its secondary is stopped (an
    # older agent did): either way the desk hears "not protected", once, not "failed".
    m, d = settled_pair()
    stopped = module(state="STOP", readiness="NotReady", last_rule="stop by root@desk")
    m.apply_snapshot("node2", node("node2", stopped), 2.0)
    alone = module(state="ALONE", degraded=degraded, last_rule="peer-not-second")
    m.apply_snapshot("node1", node("node1", alone), 2.0)
    (alert,) = d.update(m, 2.0)
    assert alert.kind is AlertKind.UNPROTECTED and alert.severity is Severity.WARNING
    # A console opened then: node1's snapshot comes first, node2 is still connecting.
    fresh = AlertDetector()
    early = ClusterModel("site", ADDR)
    early.apply_snapshot("node1", node("node1", alone), 2.0)
    assert fresh.update(early, 2.0) == []
    early.apply_snapshot("node2", node("node2", stopped), 2.1)
    assert [a.kind for a in fresh.update(early, 2.1)] == [AlertKind.UNPROTECTED]
    assert alert.title == "web: not protected while node2 is stopped"
    assert alert.message == "node2 was stopped by root@desk; node1 serves web without a copy"


def test_redundancy_restored_ends_a_resync_once() -> None:
    m, d = settled_pair()
    m.apply_snapshot("node2", node("node2", module(state="STOP", readiness="NotReady",
                     uptodate=False, last_rule="stop")), 2.0)  # fmt: skip
    m.apply_snapshot("node1", node("node1", module(state="ALONE")), 2.0)
    d.update(m, 2.0)
    m.apply_snapshot("node1", node("node1", module(state="PRIM", readiness="Transient",
                     peer=("SECOND", "Transient"))), 3.0)  # fmt: skip
    m.apply_snapshot("node2", node("node2", module(state="SECOND", readiness="Transient",
                     uptodate=False, resync=(1, 2, 1.0, 1.0))), 3.0)  # fmt: skip
    assert d.update(m, 3.0) == []
    m.apply_snapshot("node1", node("node1", module()), 4.0)
    m.apply_snapshot("node2", node("node2", module(state="SECOND")), 4.0)
    (restored,) = d.update(m, 4.0)
    assert restored.kind is AlertKind.RESTORED and restored.severity is Severity.INFO
    assert restored.title == "web: redundancy restored"
    assert restored.message.startswith("node2's copy is identical to node1's again")
    assert d.update(m, 5.0) == []
    # node2's stream lags behind node1's: a stale STOP of node2 beside node1's PRIM Ready
    # is no new loss (the primary's own snapshot says whether it is protected).
    m.apply_snapshot("node2", node("node2", module(state="STOP", readiness="NotReady",
                     uptodate=False, last_rule="stop")), 6.0)  # fmt: skip
    assert d.update(m, 6.0) == []
    m.apply_snapshot("node2", node("node2", module(state="SECOND")), 7.0)
    assert d.update(m, 7.0) == []


def test_no_restored_notice_after_a_start_up_or_a_swap() -> None:
    m, d = ClusterModel("site", ADDR), AlertDetector()
    steps = [  # a start-up: both wait, node1 elected (alone a moment), node2 resyncs
        (module(state="WAIT", readiness="Transient"), module(state="WAIT", readiness="Transient")),
        (module(state="ALONE", readiness="Transient"),
         module(state="WAIT", readiness="NotReady", uptodate=False)),
        (module(state="PRIM", readiness="Transient"),
         module(state="SECOND", readiness="Transient", uptodate=False)),
        (module(), module(state="SECOND")),
        # a swap: node1 hands over (its copy stays current), node2 takes over
        (module(state="PRIM", readiness="Transient"), module(state="SECOND")),
        (module(state="WAIT", readiness="Transient", last_rule="swap"),
         module(state="PRIM", readiness="Transient", last_rule="swap")),
        (module(state="SECOND", last_rule="swap"), module(state="PRIM", last_rule="swap")),
    ]  # fmt: skip
    kinds = []
    for t, (n1, n2) in enumerate(steps):
        m.apply_snapshot("node1", node("node1", n1), float(t))
        m.apply_snapshot("node2", node("node2", n2), float(t))
        kinds += [a.kind for a in d.update(m, float(t))]
    assert kinds == [AlertKind.MOVED]
