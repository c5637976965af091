"""The module card's right-click menu against two REAL agents: every command says which
node it acts on, under a visible heading per node, and the command goes to that node."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint
from PySide6.QtGui import QContextMenuEvent
from PySide6.QtWidgets import QApplication, QLabel, QMenu, QWidgetAction

from console.ui.main_window import MainWindow
from protos import mirrorpair_pb2 as pb
from tests.console.live import console_window, wait_for
from tests.console.test_console_truth_live import settled
from tests.integration.agents import LocalCluster

COMMAND_WORDS = ("Start", "Stop", "Restart", "Stop and start", "Make secondary",
                 "Force primary", "Force stop")  # fmt: skip


@pytest.fixture
def lc(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path / "cluster") as cluster:
        cluster.wait_settled("web")
        yield cluster


@pytest.fixture
def window(qtbot: Any, run: Callable[..., Any], lc: LocalCluster) -> Iterator[MainWindow]:
    with console_window(qtbot, run, lc) as w:
        yield w


def right_click(qtbot: Any, w: MainWindow, module: str) -> QMenu:
    """A right click on the module's card, as the mouse sends it; the menu it opens."""
    view = w.current_view()
    assert view is not None
    card = view.card(module)
    at = QPoint(card.width() // 3, card.height() // 2)
    QApplication.sendEvent(
        card, QContextMenuEvent(QContextMenuEvent.Reason.Mouse, at, card.mapToGlobal(at))
    )
    wait_for(qtbot, lambda: isinstance(QApplication.activePopupWidget(), QMenu), 5, "no menu")
    menu = QApplication.activePopupWidget()
    assert isinstance(menu, QMenu)
    return menu


def sections(menu: QMenu) -> dict[str, list[str]]:
    """The menu as the operator reads it: each visible heading and the commands under it."""
    out: dict[str, list[str]] = {"": []}
    current = ""
    for action in menu.actions():
        if isinstance(action, QWidgetAction):
            label = action.defaultWidget()
            assert isinstance(label, QLabel)
            assert label.isVisible() and label.width() > 0, "a heading the operator cannot see"
            current = label.text()
            out[current] = []
        elif action.text():
            out[current].append(action.text())
    return out


def test_every_command_names_its_node_and_goes_there(
    qtbot: Any, window: MainWindow, lc: LocalCluster
) -> None:
    primary, secondary = settled(qtbot, window, lc)
    menu = right_click(qtbot, window, "web")
    shown = sections(menu)
    assert shown[""] == [f"Swap to {secondary}"]
    headings = [h for h in shown if h]
    assert headings == [
        f"node1 — {'PRIM · Ready (primary)' if primary == 'node1' else 'SECOND · Ready'}",
        f"node2 — {'PRIM · Ready (primary)' if primary == 'node2' else 'SECOND · Ready'}",
    ]
    for heading in headings:
        node = heading.split(" ", 1)[0]
        other = "node2" if node == "node1" else "node1"
        texts = shown[heading]
        assert [t.split(" on ")[0] for t in texts] == list(COMMAND_WORDS), texts
        assert all(f" on {node}" in t and other not in t for t in texts), texts

    # "Force stop on <primary>…" asks about that node, in the dialog itself; no.
    force = next(a for a in menu.actions() if a.text() == f"Force stop on {primary}…")
    force.trigger()
    menu.close()
    wait_for(qtbot, lambda: window.confirmer.current is not None, 5, "no confirmation")
    shown_text = window.confirmer.shown_text()
    assert f"Force stop web on {primary}?" in shown_text and primary in shown_text
    window.confirmer.answer(False)
    # "Stop on <secondary>": asked about that node, sent to that node's agent.
    menu = right_click(qtbot, window, "web")
    stop = next(a for a in menu.actions() if a.text() == f"Stop on {secondary}")
    stop.trigger()
    menu.close()
    wait_for(qtbot, lambda: window.confirmer.current is not None, 5, "no confirmation")
    assert f"Stop web on {secondary}?" in window.confirmer.shown_text()
    assert lc.module(secondary, "web").state == pb.STATE_SECOND  # nothing sent yet
    window.confirmer.answer(True)
    view = window.current_view()
    assert view is not None
    wait_for(  # through Qt: the console's event loop sends the command
        qtbot,
        lambda: view.card("web").state_text(secondary).startswith("STOP"),
        15,
        f"{secondary} not stopped",
        lc.describe,
    )
    assert lc.module(secondary, "web").state == pb.STATE_STOP  # the agent says so
    assert lc.module(primary, "web").state in (pb.STATE_PRIM, pb.STATE_ALONE)  # untouched
    took = lc.client(secondary).logs("web", 200, "DEBUG")
    assert any(e.cause == "stop" and "console" in e.who for e in took), "not the console's"
