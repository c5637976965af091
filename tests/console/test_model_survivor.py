"""Choosing the split-brain survivor (pure model): what may be sent, or why not."""

from __future__ import annotations

from console.model.survivor import in_split_brain, plan_survivor
from protos import mirrorpair_pb2 as pb
from tests.console.builders import module, pair


def split() -> tuple[pb.ModuleStatus, pb.ModuleStatus]:
    return (
        module(state="ALONE", split_brain=True),
        module(state="WAIT", readiness="NotReady", split_brain=True, uptodate=False),
    )


def test_keeping_the_serving_copy_sends_second_to_the_other_node() -> None:
    m = pair(*split())
    assert in_split_brain(m, "web")
    plan = plan_survivor(m, "web", "node1")
    assert plan.ok and plan.send_to == "node2" and plan.command == pb.COMMAND_SECOND
    assert "quarantine" in plan.reason and "resynchronized from node1" in plan.reason


def test_keeping_the_waiting_copy_names_the_steps_instead() -> None:
    plan = plan_survivor(pair(*split()), "web", "node2")
    assert not plan.ok and not plan.send_to
    assert "stop web on node1, then force node2 primary" in plan.reason


def test_refusals() -> None:
    n1, n2 = split()
    cases = [
        (pair(module(), module(state="SECOND")), "node1", "web is not in split brain"),
        (pair(n1, None), "node1", "node2 is not answering"),
        (pair(n1, n2), "node3", "unknown node 'node3'"),
    ]
    for model, keep, reason in cases:
        plan = plan_survivor(model, "web", keep)
        assert not plan.ok and reason in plan.reason, (plan.reason, reason)
    assert not in_split_brain(pair(module(), module(state="SECOND")), "web")
    busy = plan_survivor(pair(n1, n2), "web", "node1", busy="swap")
    assert not busy.ok and "swap is already in progress" in busy.reason
    assert "unknown module" in plan_survivor(pair(n1, n2), "db", "node1").reason
