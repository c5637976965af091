"""Can this module be moved to node X, and if not, why (DESIGN §3 `swap`, §8 drag = migrate).

The console asks before it sends anything, so that a drop that cannot work is refused
with a reason the operator can act on instead of an agent error after the fact.
"""

from __future__ import annotations

from dataclasses import dataclass

from console.model.cluster import NODE_IDS, ClusterModel, other_node
from protos import mirrorpair_pb2 as pb


@dataclass(frozen=True)
class MigrationPlan:
    module: str
    target: str  # node that should end up primary
    ok: bool
    reason: str  # why it cannot work, or (when ok) what will happen
    send_to: str = ""  # node that receives the command: the current primary
    command: int = pb.COMMAND_MIGRATE


def plan_migration(
    model: ClusterModel,
    module: str,
    target: str,
    *,
    command: int = pb.COMMAND_MIGRATE,
    busy: str = "",
) -> MigrationPlan:
    """Whether ``module`` can move to ``target`` now. ``busy`` names an operation already
    running on the module (the console sends one at a time)."""

    def refuse(reason: str) -> MigrationPlan:
        return MigrationPlan(module, target, False, reason, command=command)

    if target not in NODE_IDS:
        return refuse(f"unknown node {target!r}")
    view = model.module(module)
    if view is None:
        return refuse(f"unknown module {module!r}")
    if busy:
        return refuse(f"{busy} is already in progress for {module}")
    src = other_node(target)
    here, there = view.nodes[src], view.nodes[target]
    if view.two_primaries:
        return refuse(f"{module} is primary on both nodes: resolve that first")
    if view.primary == target:
        return refuse(f"{module} already runs on {target}")
    if not there.reachable:
        return refuse(f"{target} is not answering ({there.reason or 'no connection'})")
    if not there.configured:
        return refuse(f"{module} is not configured on {target}")
    if view.primary is None:
        return refuse(f"{module} has no primary: start it first")
    if not here.reachable:
        return refuse(
            f"{src}, where {module} runs, is not answering: the command must be sent there"
        )
    if here.split_brain or there.split_brain:
        return refuse(f"{module} is in split brain: choose the surviving copy first")
    if there.data_plane is not None and there.data_plane.down:
        return refuse(f"{module}'s data plane on {target} is down: it is being started again")
    if there.label != "SECOND":
        why = f" ({there.reason})" if there.reason else ""
        return refuse(f"{target} is {there.text}, not a ready secondary{why}")
    if there.readiness != "Ready":
        sync = f" ({there.resync.summary()})" if there.resync is not None else ""
        return refuse(f"{target} is still resynchronizing{sync}: its copy is not complete yet")
    if there.uptodate is False:
        return refuse(f"{target}'s copy of {module} is not up to date")
    if here.degraded:
        return refuse(f"replication of {module} is degraded: {target} may not have every write")
    vip = f" and releases {view.vip}" if view.vip else ""
    take = f", takes over {view.vip}" if view.vip else ""
    what = (
        f"{src} stops {module}{vip}; {target}, whose copy is up to date, becomes primary{take} "
        f"and starts it. The application is unavailable for a few seconds."
    )
    return MigrationPlan(module, target, True, what, send_to=src, command=command)


def plan_swap(model: ClusterModel, module: str, *, busy: str = "") -> MigrationPlan:
    """A swap moves the module to the node that is not its primary now."""
    view = model.module(module)
    if view is None:
        return MigrationPlan(
            module, "", False, f"unknown module {module!r}", command=pb.COMMAND_SWAP
        )
    if view.primary is None:
        reason = (
            f"{module} is primary on both nodes: resolve that first"
            if view.two_primaries
            else f"{module} has no primary: nothing to swap"
        )
        return MigrationPlan(module, "", False, reason, command=pb.COMMAND_SWAP)
    return plan_migration(
        model, module, other_node(view.primary), command=pb.COMMAND_SWAP, busy=busy
    )
