"""A module card's right-click menu. Every command names the node it acts on ("Force
stop on node2…") under a visible heading per node with its state there: Fusion (and
the console's style sheet) draw QMenu sections as bare separators, so two identical
groups of commands could not be told apart."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QLabel, QMenu, QWidget, QWidgetAction

from console.model.cluster import NODE_IDS
from console.model.migration import plan_swap
from console.model.survivor import in_split_brain, plan_survivor
from protos import mirrorpair_pb2 as pb

if TYPE_CHECKING:
    from console.ui.flows import CommandFlows

MENU_ORDER = (
    pb.COMMAND_START,
    pb.COMMAND_STOP,
    pb.COMMAND_RESTART,
    pb.COMMAND_STOPSTART,
    pb.COMMAND_SECOND,
    pb.COMMAND_PRIM,
    pb.COMMAND_FORCESTOP,
)


def command_text(name: str, node_id: str) -> str:
    """("Force stop…", "node2") -> "Force stop on node2…" (the ellipsis: it asks more)."""
    more = "…" if name.endswith("…") else ""
    return f"{name.rstrip('…')} on {node_id}{more}"


def heading(menu: QMenu, text: str, tooltip: str = "") -> QLabel:
    """A non-clickable heading line in ``menu`` (QMenu.addSection shows no text here)."""
    label = QLabel(text)
    label.setObjectName("menuHeading")
    label.setToolTip(tooltip)
    action = QWidgetAction(menu)
    action.setDefaultWidget(label)
    menu.addAction(action)
    return label


def build_module_menu(flows: CommandFlows, module: str, parent: QWidget) -> QMenu:
    from console.ui.flows import COMMANDS

    model, busy = flows.session.model, flows.session.ops.busy(module)
    menu = QMenu(parent)
    menu.setObjectName("moduleMenu")
    menu.setToolTipsVisible(True)
    swap = plan_swap(model, module, busy=busy)
    act = menu.addAction(f"Swap to {swap.target}" if swap.target else "Swap")
    act.setEnabled(swap.ok)
    act.setToolTip(swap.reason)
    act.triggered.connect(lambda: flows.request_swap(module))
    if in_split_brain(model, module):
        heading(menu, "Split brain: keep which copy?")
        for keep in NODE_IDS:
            plan = plan_survivor(model, module, keep, busy=busy)
            a = menu.addAction(f"Keep {keep}'s copy…")
            a.setEnabled(plan.ok)
            a.setToolTip(plan.reason)
            a.triggered.connect(lambda _=False, k=keep: flows.request_survivor(module, k))
    view = model.module(module)
    for node_id in NODE_IDS:
        v = view.nodes[node_id] if view is not None else None
        state = f" — {v.text}" if v is not None else ""
        role = " (primary)" if v is not None and v.primary else ""
        reason = flows.unavailable(module, node_id)
        menu.addSeparator()
        heading(menu, f"{node_id}{state}{role}", reason or (v.reason if v is not None else ""))
        for command in MENU_ORDER:
            a = menu.addAction(command_text(COMMANDS[command][0], node_id))
            a.setEnabled(not reason)
            a.setToolTip(reason or COMMANDS[command][1].format(m=module, n=node_id))
            a.triggered.connect(
                lambda _=False, c=command, n=node_id: flows.request_command(module, c, n)
            )
    return menu
