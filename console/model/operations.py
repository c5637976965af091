"""Commands the console sent and how they end, for the progress/result line on a card.

A migrate or swap is "done" only when the model sees the module primary and Ready on
the target node, and started there (a VM: booted, its checks passed), not when the
agent accepts the command (acceptance only starts it). Meanwhile the line names the
current step (console/model/move_progress.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from console.model.cluster import ClusterModel
from console.model.move_progress import MoveMemory, Step, move_step
from console.model.states import format_duration
from protos import mirrorpair_pb2 as pb

MOVE_COMMANDS = frozenset({pb.COMMAND_MIGRATE, pb.COMMAND_SWAP})
MOVE_TIMEOUT_S = 120.0  # with no step reported under way
# While an agent reports a stop, start or boot under way (a VM's shutdown waits up to its
# stop_timeout_s, then it boots), the move is given longer before it is called failed.
MOVE_ACTIVE_TIMEOUT_S = 600.0
SHOW_FINISHED_S = 15.0  # how long a result stays on the card
KEEP_FINISHED_S = 3600.0


class Phase(StrEnum):
    SENDING = "sending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


def command_name(command: int) -> str:
    return pb.Command.Name(command).removeprefix("COMMAND_").lower()


@dataclass(frozen=True)
class Operation:
    op_id: int
    module: str
    command: int
    node: str  # where the command was sent
    target: str  # for migrate/swap: the node that should end up primary
    phase: Phase
    message: str
    started: float
    finished: float = 0.0
    memory: MoveMemory = MoveMemory()  # what a move saw of its steps so far

    @property
    def active(self) -> bool:
        return self.phase in (Phase.SENDING, Phase.RUNNING)

    @property
    def title(self) -> str:
        if self.command in MOVE_COMMANDS:
            return f"{command_name(self.command).capitalize()} to {self.target}"
        return f"{command_name(self.command).capitalize()} on {self.node}"


class OperationTracker:
    def __init__(self) -> None:
        self._ops: dict[int, Operation] = {}
        self._next = 1

    def start(self, module: str, command: int, node: str, target: str, now: float) -> Operation:
        op = Operation(
            self._next,
            module,
            command,
            node,
            target,
            Phase.SENDING,
            f"sending {command_name(command)} to {node}…",
            now,
        )
        self._next += 1
        self._ops[op.op_id] = op
        return op

    def replied(self, op_id: int, accepted: bool, message: str, now: float) -> Operation | None:
        op = self._ops.get(op_id)
        if op is None or not op.active:
            return None
        if not accepted:
            op = replace(
                op, phase=Phase.FAILED, message=f"refused by {op.node}: {message}", finished=now
            )
        elif op.command in MOVE_COMMANDS:
            op = replace(op, phase=Phase.RUNNING, message=message or "in progress")
        else:
            op = replace(op, phase=Phase.DONE, message=message or "done", finished=now)
        self._ops[op_id] = op
        return op

    def update(self, model: ClusterModel, now: float) -> list[Operation]:
        """Finish running moves the model shows complete (or overdue); the changed ones."""
        for op_id in [
            i for i, o in self._ops.items() if not o.active and now - o.finished > KEEP_FINISHED_S
        ]:
            del self._ops[op_id]  # bounded memory for a console that runs for months
        changed = []
        for op in list(self._ops.values()):
            if op.phase is not Phase.RUNNING:
                continue
            view = model.module(op.module)
            there = view.nodes.get(op.target) if view is not None else None
            s = move_step(model, op.module, op.node, op.target, op.started, op.memory, now)
            limit = MOVE_ACTIVE_TIMEOUT_S if s.active else MOVE_TIMEOUT_S
            if s.step is Step.DONE:
                new = replace(op, phase=Phase.DONE, finished=now, message=s.text, memory=s.memory)
            elif now - op.started > limit:
                state = there.text if there is not None else "unknown"
                step = f"; {s.text}" if s.text else ""
                new = replace(
                    op,
                    phase=Phase.FAILED,
                    finished=now,
                    message=f"not finished after {format_duration(now - op.started)}: "
                    f"{op.target} is {state}{step}",
                    memory=s.memory,
                )
            else:
                # No step reported: the reason of the node acting now (the source until
                # the target is primary: "handing over to the peer"), not a bystander's.
                acting = there if there is not None and there.primary else None
                if acting is None and view is not None:
                    acting = view.nodes.get(op.node)
                reason = acting.reason if acting is not None and acting.reason else op.message
                detail = s.text or reason
                if detail == op.message and s.memory == op.memory:
                    continue
                new = replace(op, message=detail, memory=s.memory)
            self._ops[op.op_id] = new
            changed.append(new)
        return changed

    def busy(self, module: str) -> str:
        """The title of an operation still running on ``module``, or ""."""
        return next((o.title for o in self._ops.values() if o.module == module and o.active), "")

    def latest(self, module: str, now: float) -> Operation | None:
        """What the module's card shows: the newest operation, unless finished long ago."""
        ops = [o for o in self._ops.values() if o.module == module]
        if not ops:
            return None
        op = max(ops, key=lambda o: o.op_id)
        if not op.active and now - op.finished > SHOW_FINISHED_S:
            return None
        return op

    def get(self, op_id: int) -> Operation | None:
        return self._ops.get(op_id)

    def failed(self, op_id: int, message: str, now: float) -> Operation | None:
        """The command could not be delivered (node unreachable, timeout)."""
        op = self._ops.get(op_id)
        if op is None or not op.active:
            return None
        op = replace(op, phase=Phase.FAILED, message=message, finished=now)
        self._ops[op_id] = op
        return op
