"""Migration eligibility and the progress of a move (pure model)."""

from __future__ import annotations

from console.model.cluster import ClusterModel
from console.model.migration import plan_migration, plan_swap
from console.model.operations import OperationTracker, Phase
from protos import mirrorpair_pb2 as pb
from tests.console.builders import ADDR, module, node, pair


def test_ready_pair_can_migrate_to_the_secondary() -> None:
    m = pair(module(vip="10.0.0.9/24"), module(state="SECOND"))
    plan = plan_migration(m, "web", "node2")
    assert plan.ok and plan.send_to == "node1" and plan.command == pb.COMMAND_MIGRATE
    assert "node1 stops web and releases 10.0.0.9/24" in plan.reason
    swap = plan_swap(m, "web")
    assert swap.ok and swap.target == "node2" and swap.command == pb.COMMAND_SWAP


def test_refusals_name_the_reason() -> None:
    cases = [
        (pair(module(), module(state="SECOND")), "node1", "already runs on node1"),
        (pair(module(), None), "node2", "node2 is not answering (connection refused)"),
        (
            pair(
                module(state="ALONE"), module(state="WAIT", readiness="NotReady", reason="waiting")
            ),
            "node2",
            "node2 is WAIT · NotReady, not a ready secondary (waiting)",
        ),
        (
            pair(module(), module(state="SECOND", readiness="Transient", resync=(1, 4, 0.0, 0.0))),
            "node2",
            "node2 is still resynchronizing (resync 25%)",
        ),
        (pair(module(), module(state="SECOND", uptodate=False)), "node2", "not up to date"),
        (
            pair(
                module(state="STOP", readiness="NotReady"),
                module(state="STOP", readiness="NotReady"),
            ),
            "node2",
            "has no primary",
        ),
        (pair(module(), module("db", state="SECOND")), "node2", "not configured on node2"),
        (pair(module(split_brain=True), module(state="SECOND")), "node2", "split brain"),
        (pair(module(degraded=True), module(state="SECOND")), "node2", "degraded"),
    ]
    for model, target, reason in cases:
        plan = plan_migration(model, "web", target)
        assert not plan.ok and reason in plan.reason, (reason, plan.reason)
    busy = plan_migration(cases[0][0], "web", "node2", busy="Migrate to node2")
    assert not busy.ok and "already in progress" in busy.reason
    assert "unknown module" in plan_migration(cases[0][0], "nope", "node2").reason


def test_primary_unreachable_cannot_be_commanded() -> None:
    m = ClusterModel("c", ADDR)
    m.apply_unreachable("node1", "timeout", 1.0)
    m.apply_snapshot("node2", node("node2", module(state="SECOND", peer=("PRIM", "Ready"))), 1.0)
    plan = plan_migration(m, "web", "node2")
    assert not plan.ok and "node1, where web runs, is not answering" in plan.reason
    assert "unknown module" in plan_swap(ClusterModel("c", ADDR), "web").reason


def test_move_completes_when_target_is_primary_and_ready() -> None:
    m = pair(module(), module(state="SECOND"))
    ops = OperationTracker()
    op = ops.start("web", pb.COMMAND_MIGRATE, "node1", "node2", 10.0)
    assert ops.busy("web") == "Migrate to node2"
    running = ops.replied(op.op_id, True, "handing over to the peer", 10.1)
    assert running is not None and running.phase is Phase.RUNNING
    assert ops.update(m, 10.5) == []  # nothing moved yet
    m.apply_snapshot("node1", node("node1", module(state="SECOND", last_rule="swap")), 11.0)
    m.apply_snapshot(
        "node2", node("node2", module(state="PRIM", readiness="Transient", reason="starting")), 11.0
    )
    (changed,) = ops.update(m, 11.0)
    assert changed.phase is Phase.RUNNING and changed.message == "starting"
    m.apply_snapshot("node2", node("node2", module(state="PRIM", last_rule="swap")), 12.0)
    (done,) = ops.update(m, 12.0)
    assert done.phase is Phase.DONE and done.message.startswith("web now runs on node2")
    assert ops.busy("web") == "" and ops.latest("web", 13.0) == done
    assert ops.latest("web", 60.0) is None  # results fade from the card


def test_refused_and_undelivered_commands_fail_with_the_message() -> None:
    ops = OperationTracker()
    op = ops.start("web", pb.COMMAND_SWAP, "node1", "node2", 1.0)
    failed = ops.replied(op.op_id, False, "the peer is not a ready secondary", 1.2)
    assert failed is not None and failed.phase is Phase.FAILED
    assert failed.message == "refused by node1: the peer is not a ready secondary"
    op2 = ops.start("web", pb.COMMAND_STOP, "node2", "", 2.0)
    lost = ops.failed(op2.op_id, "node2 is not connected", 2.1)
    assert lost is not None and lost.phase is Phase.FAILED
    op3 = ops.start("web", pb.COMMAND_RESTART, "node1", "", 3.0)
    ok = ops.replied(op3.op_id, True, "restarting", 3.1)
    assert ok is not None and ok.phase is Phase.DONE and ok.title == "Restart on node1"


def test_move_times_out() -> None:
    m = pair(module(), module(state="SECOND"))
    ops = OperationTracker()
    op = ops.start("web", pb.COMMAND_SWAP, "node1", "node2", 0.0)
    ops.replied(op.op_id, True, "handing over", 0.1)
    (late,) = ops.update(m, 500.0)
    assert late.phase is Phase.FAILED and "node2 is SECOND · Ready" in late.message


def test_a_target_whose_data_plane_is_down_is_refused_and_back_it_is_not() -> None:
    second = module(state="SECOND")
    second.data_plane.CopyFrom(pb.DataPlaneInfo(pid=0))
    plan = plan_migration(pair(module(), second), "web", "node2")
    assert (
        not plan.ok
        and plan.reason == "web's data plane on node2 is down: it is being started again"
    )
    second.data_plane.pid = 77
    assert plan_migration(pair(module(), second), "web", "node2").ok
