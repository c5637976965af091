"""Split brain: whose copy survives (DESIGN §3, "the console offers the operator the
choice of survivor"). Pure: what the console may send, or why it may not.

After a split brain the node that was primary first keeps serving; the other waits.
Keeping the serving copy is one command, `second` on the other node: it moves what that
node wrote on its own to its quarantine folder, then resyncs it. Keeping the waiting
copy means the serving node must stop first; the operator does that step on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass

from console.model.cluster import NODE_IDS, ClusterModel, other_node
from protos import mirrorpair_pb2 as pb


@dataclass(frozen=True)
class SurvivorPlan:
    module: str
    keep: str  # node whose copy survives
    ok: bool
    reason: str  # why it cannot be done now, or (when ok) what will happen
    send_to: str = ""  # the node told to become secondary
    command: int = pb.COMMAND_SECOND


def in_split_brain(model: ClusterModel, module: str) -> bool:
    view = model.module(module)
    return view is not None and any(n.split_brain for n in view.nodes.values())


def plan_survivor(model: ClusterModel, module: str, keep: str, *, busy: str = "") -> SurvivorPlan:
    """Whether ``keep``'s copy of ``module`` can be made the survivor now."""

    def refuse(reason: str) -> SurvivorPlan:
        return SurvivorPlan(module, keep, False, reason)

    if keep not in NODE_IDS:
        return refuse(f"unknown node {keep!r}")
    view = model.module(module)
    if view is None:
        return refuse(f"unknown module {module!r}")
    if not in_split_brain(model, module):
        return refuse(f"{module} is not in split brain")
    if busy:
        return refuse(f"{busy} is already in progress for {module}")
    drop = other_node(keep)
    if not view.nodes[drop].reachable:
        return refuse(f"{drop} is not answering: the command must be sent there")
    if not view.nodes[keep].reachable:
        return refuse(f"{keep} is not answering: {drop} could not resync from it")
    if view.primary != keep:
        return refuse(
            f"{keep} does not serve {module}. To keep its copy: stop {module} on {drop}, "
            f"then force {keep} primary; {drop} then finds the split brain in turn, and "
            f"this choice keeps {keep}'s copy."
        )
    what = (
        f"{drop} becomes secondary of {module}. What {drop} wrote on its own since the "
        f"split is moved to its quarantine folder (nothing is deleted); then {drop} is "
        f"resynchronized from {keep}, which keeps serving."
    )
    return SurvivorPlan(module, keep, True, what, send_to=drop)
