"""From an operator's gesture to a command: plan, refuse with a reason or confirm, then
hand the command to the session (which sends it on the event loop)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMenu, QWidget

from console.model.migration import MigrationPlan, plan_migration, plan_swap
from console.model.survivor import SurvivorPlan, plan_survivor
from console.ui.confirm import Confirmer
from console.ui.session import ClusterSession
from protos import mirrorpair_pb2 as pb

# (menu text, question) per command; {m} module, {n} node.
COMMANDS: dict[int, tuple[str, str]] = {
    pb.COMMAND_START: (
        "Start",
        "Start {m} on {n}? It looks for its peer, then becomes primary or secondary.",
    ),
    pb.COMMAND_STOP: (
        "Stop",
        "Stop {m} on {n}? If {n} is primary, a ready secondary takes "
        "over; if it is the secondary, the primary continues alone.",
    ),
    pb.COMMAND_RESTART: ("Restart", "Restart {m}'s application on {n}, locally (no failover)?"),
    pb.COMMAND_STOPSTART: (
        "Stop and start",
        "Stop {m} on {n}, then start it again? A primary fails over to a ready secondary.",
    ),
    pb.COMMAND_SECOND: (
        "Make secondary",
        "Start {m} on {n} as secondary? It resynchronizes from the primary.",
    ),
    pb.COMMAND_PRIM: (
        "Force primary…",
        "Force {n} to become primary for {m}, even if its copy is not up to date?",
    ),
    pb.COMMAND_FORCESTOP: (
        "Force stop…",
        "Force-stop {m} on {n} at once, without a clean hand-over?",
    ),
}
# Commands that can lose data or service ask twice (DESIGN §3: the admin accepts the risk).
SECOND_QUESTION: dict[int, tuple[str, str]] = {
    pb.COMMAND_PRIM: (
        "Really force primary?",
        "Forcing {n} primary for {m} serves ITS copy "
        "of the data. If that copy is not up to date, recent writes are lost; "
        "if the other node also serves, this creates a split brain. The agent "
        "logs that you did it.\n\nForce {n} primary?",
    ),
    pb.COMMAND_FORCESTOP: (
        "Really force stop?",
        "{m} stops on {n} immediately: the "
        "application is killed, clients are cut off, and a secondary that "
        "was resynchronizing is no longer up to date.\n\nForce stop?",
    ),
}


class CommandFlows(QObject):
    refused = Signal(str)  # the reason, shown to the operator

    def __init__(
        self, session: ClusterSession, confirmer: Confirmer, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.session, self.confirmer = session, confirmer

    # ----- migrate / swap -----------------------------------------------------------------
    def request_migration(self, module: str, target: str) -> None:
        self._move(
            lambda: plan_migration(
                self.session.model, module, target, busy=self.session.ops.busy(module)
            )
        )

    def request_swap(self, module: str) -> None:
        self._move(
            lambda: plan_swap(self.session.model, module, busy=self.session.ops.busy(module))
        )

    def _move(self, make_plan: Callable[[], MigrationPlan]) -> None:
        plan = make_plan()
        if not plan.ok:
            self.refused.emit(plan.reason)
            return
        verb = "Swap" if plan.command == pb.COMMAND_SWAP else "Move"

        def confirmed() -> None:
            again = make_plan()
            if not again.ok:  # the cluster changed while the question was open
                self.refused.emit(again.reason)
                return
            self.session.move(again)

        self.confirmer.ask(
            f"{verb} {plan.module} to {plan.target}?",
            f"{plan.reason}\n\nThe command is sent to {plan.send_to}, where {plan.module} "
            "runs now.",
            confirmed,
            yes_text=f"{verb} to {plan.target}",
        )

    # ----- split brain: whose copy survives ---------------------------------------------
    def request_survivor(self, module: str, keep: str) -> None:
        def make_plan() -> SurvivorPlan:
            return plan_survivor(
                self.session.model, module, keep, busy=self.session.ops.busy(module)
            )

        plan = make_plan()
        if not plan.ok:
            self.refused.emit(plan.reason)
            return

        def confirmed() -> None:
            again = make_plan()
            if not again.ok:  # the cluster changed while the questions were open
                self.refused.emit(again.reason)
                return
            self.session.command(module, again.command, again.send_to)

        drop = plan.send_to
        self.confirmer.ask(
            f"Keep {keep}'s copy of {module}?",
            f"Both nodes wrote to {module} while they could not see each other.\n\n{plan.reason}",
            confirmed,
            yes_text=f"Keep {keep}'s copy",
            danger=True,
            then=(
                "Really set aside the other copy?",
                f"{drop}'s own changes to {module} stop being served: they are kept only "
                f"in {drop}'s quarantine folder, to be looked at or copied back by hand."
                f"\n\nKeep {keep}'s copy?",
            ),
        )

    # ----- other commands -----------------------------------------------------------------
    def request_command(self, module: str, command: int, node_id: str) -> None:
        reason = self.unavailable(module, node_id)
        if reason:
            self.refused.emit(reason)
            return
        name, question = COMMANDS[command]
        fmt = {"m": module, "n": node_id}
        then = SECOND_QUESTION.get(command)
        self.confirmer.ask(
            f"{name.rstrip('…')} {module} on {node_id}?",
            question.format(**fmt),
            lambda: self.session.command(module, command, node_id),
            yes_text=name.rstrip("…"),
            danger=then is not None,
            then=(then[0], then[1].format(**fmt)) if then else None,
        )

    def unavailable(self, module: str, node_id: str) -> str:
        """Why no command can be sent to ``node_id`` for ``module`` now; empty if none."""
        view = self.session.model.module(module)
        if view is None:
            return f"unknown module {module!r}"
        v = view.nodes[node_id]
        if not v.reachable:
            return f"{node_id} is not answering: {v.reason or 'no connection'}"
        if not v.configured:
            return f"{module} is not configured on {node_id}"
        busy = self.session.ops.busy(module)
        return f"{busy} is already in progress for {module}" if busy else ""

    def build_menu(self, module: str, parent: QWidget) -> QMenu:
        """The card's right-click menu (console/ui/module_menu.py)."""
        from console.ui.module_menu import build_module_menu

        return build_module_menu(self, module, parent)
