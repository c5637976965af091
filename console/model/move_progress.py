"""The steps of a migrate/swap as both nodes' status streams show them (issue 11): the
source's stop (a VM's ACPI shutdown), the hand-over, the target's start and (a VM's)
boot, each with its time. Every step is read from what an agent reports of itself
(ModuleStatus.activity, last_stop_s, last_start_s), never guessed from elapsed time; an
agent that reports none of it gets the plain reason line of before."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from console.model.cluster import ClusterModel
from console.model.states import format_duration, is_primary
from console.model.vm_facts import (
    BOOTING,
    FORCE_STOPPING,
    START_ACTIVITIES,
    STARTING,
    STOP_ACTIVITIES,
    format_seconds,
)
from protos import mirrorpair_pb2 as pb


class Step(StrEnum):
    WAITING = "waiting"  # nothing reported yet that names a step (the hand-over)
    STOPPING = "stopping"
    STOPPED = "stopped"
    STARTING = "starting"
    BOOTING = "booting"
    DONE = "done"


@dataclass(frozen=True)
class MoveMemory:
    """What a move saw earlier that its later snapshots no longer say."""

    source_ran: bool = False  # the source was seen running (or stopping) during the move
    stop_s: float = 0.0  # the source's stop, once seen finished (its last_stop_s)


@dataclass(frozen=True)
class MoveStep:
    step: Step
    text: str  # "" for WAITING: the caller keeps its own line
    memory: MoveMemory
    active: bool = False  # an agent reports a stop, start or boot under way


def agent_elapsed(model: ClusterModel, node: str, since: float, now: float) -> float:
    """Seconds from ``since`` (that agent's clock) to ``now`` (the console's), the two
    clocks related by the agent's time in its latest snapshot and when it arrived."""
    status = model.status(node)
    offset = 0.0
    if status is not None and status.time > 0:
        offset = model.node(node).last_update - status.time
    return max(0.0, now - (since + offset))


def move_step(
    model: ClusterModel,
    module: str,
    source: str,
    target: str,
    started: float,
    memory: MoveMemory,
    now: float,
) -> MoveStep:
    """Where the move of ``module`` from ``source`` to ``target`` (sent at ``started``,
    console clock) stands now."""
    src = model.module_status(source, module)
    dst = model.module_status(target, module)
    vm = (dst or src or pb.ModuleStatus()).kind == "vm"
    if src is not None and (src.resource_running or src.activity in STOP_ACTIVITIES):
        memory = MoveMemory(True, memory.stop_s)
    stopped = (
        src is not None
        and memory.source_ran
        and not src.resource_running
        and src.activity not in STOP_ACTIVITIES
    )
    if stopped and not memory.stop_s and src is not None and src.last_stop_s > 0:
        memory = MoveMemory(True, src.last_stop_s)

    def step(kind: Step, text: str, active: bool = False) -> MoveStep:
        return MoveStep(kind, text, memory, active)

    def took(node: str, m: pb.ModuleStatus) -> str:
        return format_duration(agent_elapsed(model, node, m.activity_since, now))

    view = model.module(module)
    if (
        dst is not None
        and view is not None
        and view.primary == target
        and is_primary(dst.state)
        and dst.readiness == pb.READINESS_READY
        and dst.activity not in START_ACTIVITIES
    ):
        return step(Step.DONE, _done_text(module, target, vm, now - started, memory, dst))
    if dst is not None and dst.activity == BOOTING:
        what = "booting" if vm else f"{module} started, waiting for its checks"
        return step(Step.BOOTING, f"{what} on {target} {took(target, dst)}", True)
    if dst is not None and dst.activity == STARTING:
        return step(Step.STARTING, f"starting {module} on {target} {took(target, dst)}", True)
    if src is not None and src.activity in STOP_ACTIVITIES:
        forced = src.activity == FORCE_STOPPING
        if vm:
            what = f"destroying {module}" if forced else f"shutting down {module}"
            how = "" if forced else " (ACPI)"
        else:
            what, how = f"{'force-stopping' if forced else 'stopping'} {module}", ""
        return step(Step.STOPPING, f"{what} on {source}{how} {took(source, src)}", True)
    if stopped:
        after = f" after {format_seconds(memory.stop_s)}" if memory.stop_s else ""
        return step(Step.STOPPED, f"{module} stopped on {source}{after}; starting on {target}")
    return step(Step.WAITING, "")


def _done_text(
    module: str, target: str, vm: bool, total: float, memory: MoveMemory, dst: pb.ModuleStatus
) -> str:
    parts = []
    if memory.stop_s:
        parts.append(f"{'shutdown' if vm else 'stop'} {format_seconds(memory.stop_s)}")
    if dst.last_start_s > 0:
        parts.append(f"{'boot' if vm else 'start'} {format_seconds(dst.last_start_s)}")
    if vm:
        detail = f" ({', '.join(parts)})" if parts else ""
        return f"moved to {target} in {format_duration(total)}{detail}"
    detail = f": {', '.join(parts)}" if parts else ""
    return f"{module} now runs on {target} (took {format_duration(total)}{detail})"
