"""The console against two REAL agents (LocalCluster): colours after real transitions,
drag-and-drop migration, the Swap button, and refused drops."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent

from console.model.alerts import AlertKind
from console.model.operations import Phase
from console.ui.main_window import MainWindow
from console.ui.mime import ModuleDrag, encode
from protos import mirrorpair_pb2 as pb
from tests.console.live import console_window, wait_for
from tests.integration.agents import LocalCluster

OTHER = {"node1": "node2", "node2": "node1"}


@pytest.fixture
def lc(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path / "cluster") as cluster:
        cluster.wait_settled("web")
        yield cluster


@pytest.fixture
def window(qtbot: Any, run: Callable[..., Any], lc: LocalCluster) -> Iterator[MainWindow]:
    with console_window(qtbot, run, lc) as w:
        yield w


def settled_in_console(qtbot: Any, w: MainWindow, lc: LocalCluster) -> tuple[str, str]:
    """Wait until the console shows web PRIM Ready / SECOND Ready; (primary, secondary)."""
    primary, secondary = lc.wait_settled("web")
    view = w.current_view()
    assert view is not None
    wait_for(
        qtbot,
        lambda: (
            "web" in view.cards
            and view.card("web").state_text(primary) == "PRIM · Ready"
            and view.card("web").state_text(secondary) == "SECOND · Ready"
        ),
        20,
        "the console did not show the settled pair",
        lc.describe,
    )
    return primary, secondary


def agents_swapped(lc: LocalCluster, old_primary: str, new_primary: str) -> bool:
    """The real agents' own logs say so: the old primary accepted the console's command
    and the new primary took over by swap. (Logs, not the current states: a loaded
    machine may flap the heartbeat right after, and that is not what is tested here.)"""
    sent = lc.client(old_primary).logs("web", 500, "DEBUG")
    took = lc.client(new_primary).logs("web", 500, "DEBUG")
    return any(
        e.cause in ("swap", "migrate") and "accepted" in e.message and "console" in e.who
        for e in sent
    ) and any(e.new_state == pb.STATE_PRIM and e.cause == "swap" for e in took)


def drop(column: Any, drag: ModuleDrag) -> tuple[bool, str]:
    """Drag-enter then drop on ``column`` as Qt would; (enter accepted, drop highlight)."""
    mime = encode(drag)
    enter = QDragEnterEvent(
        QPoint(40, 120),
        Qt.DropAction.MoveAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    column.dragEnterEvent(enter)
    highlight = str(column.property("drop"))
    event = QDropEvent(
        QPointF(40, 120),
        Qt.DropAction.MoveAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    column.dropEvent(event)
    return enter.isAccepted(), highlight


def test_colours_follow_a_real_failover_and_recovery(
    qtbot: Any, window: MainWindow, lc: LocalCluster
) -> None:
    primary, secondary = settled_in_console(qtbot, window, lc)
    view = window.current_view()
    assert view is not None
    card = view.card("web")
    assert card.pill_colour(primary) == card.pill_colour(secondary) == "green"
    assert view.column_of("web") == primary

    lc.kill(primary)  # SIGKILL: the server "crashes"
    wait_for(
        qtbot,
        lambda: card.state_text(primary) == "ERROR",
        15,
        f"{primary} not shown as ERROR",
        lc.describe,
    )
    assert card.pill_colour(primary) == "red"
    wait_for(
        qtbot,
        lambda: card.state_text(secondary) == "ALONE · Ready",
        20,
        f"{secondary} did not turn ALONE Ready",
        lc.describe,
    )
    # Serving alone after the failover: amber and "not protected", never the green of
    # a protected pair.
    assert card.pill_colour(secondary) == "orange"
    assert "not protected" in card.badge_texts(secondary)
    assert lc.module(secondary, "web").state == pb.STATE_ALONE  # the real agent agrees
    wait_for(qtbot, lambda: view.column_of("web") == secondary, 5, "card did not move")
    kinds = [a.kind for a in window.notifier.history]
    assert AlertKind.NODE_LOST in kinds and AlertKind.FAILOVER in kinds
    header = view.columns[primary]
    assert "NOT ANSWERING" in header.reach.text() and header.error.text()

    lc.start(primary)  # the server comes back: it resynchronizes as secondary
    wait_for(
        qtbot,
        lambda: card.state_text(primary) == "SECOND · Ready",
        30,
        f"{primary} did not come back as SECOND Ready",
        lc.describe,
    )
    wait_for(
        qtbot,
        lambda: card.state_text(secondary) == "PRIM · Ready",
        15,
        f"{secondary} did not become PRIM Ready",
        lc.describe,
    )
    assert "online" in header.reach.text()


def test_drag_and_drop_migrates(qtbot: Any, window: MainWindow, lc: LocalCluster) -> None:
    primary, secondary = settled_in_console(qtbot, window, lc)
    view = window.current_view()
    assert view is not None
    accepted, highlight = drop(
        view.columns[secondary], ModuleDrag(view.session.name, "web", primary)
    )
    assert accepted and highlight == "ok"
    wait_for(qtbot, lambda: window.confirmer.current is not None, 5, "no confirmation")
    box = window.confirmer.current
    # The headline is inside the dialog, the details under it.
    assert box is not None and box.text() == box.windowTitle() == f"Move web to {secondary}?"
    assert primary in box.informativeText()
    assert f"Move web to {secondary}?" in window.confirmer.shown_text()
    assert lc.module(primary, "web").state == pb.STATE_PRIM  # nothing sent before "yes"
    window.confirmer.answer(True)

    wait_for(
        qtbot,
        lambda: view.column_of("web") == secondary,
        20,
        "the card did not move to the target column",
        lc.describe,
    )
    wait_for(
        qtbot, lambda: agents_swapped(lc, primary, secondary), 10, "agents not swapped", lc.describe
    )
    wait_for(
        qtbot,
        lambda: (
            (o := view.session.ops.latest("web", time.time())) is not None and o.phase is Phase.DONE
        ),
        20,
        "migration not shown as done",
    )
    assert f"now runs on {secondary}" in view.card("web").op_label.text()


def test_swap_button_swaps(qtbot: Any, window: MainWindow, lc: LocalCluster) -> None:
    primary, secondary = settled_in_console(qtbot, window, lc)
    view = window.current_view()
    assert view is not None
    view.select("web")
    assert window.swap_action.isEnabled() and "web" in window.swap_action.text()
    window.swap_action.trigger()
    wait_for(qtbot, lambda: window.confirmer.current is not None, 5, "no confirmation")
    window.confirmer.answer(True)
    # Wait through Qt (the command is sent by the event loop; never block it here).
    wait_for(
        qtbot,
        lambda: view.card("web").state_text(secondary) == "PRIM · Ready",
        20,
        "the console did not show the swap",
        lc.describe,
    )
    assert view.column_of("web") == secondary
    wait_for(
        qtbot, lambda: agents_swapped(lc, primary, secondary), 10, "agents not swapped", lc.describe
    )
    # A planned move: a notice, not a red "Failover".
    kinds = [a.kind for a in window.notifier.history]
    assert AlertKind.MOVED in kinds and AlertKind.FAILOVER not in kinds, window.notifier.history


def test_refused_drop_shows_the_reason(qtbot: Any, window: MainWindow, lc: LocalCluster) -> None:
    primary, secondary = settled_in_console(qtbot, window, lc)
    view = window.current_view()
    assert view is not None
    # Dropped on its own column: nothing to do, nothing asked.
    drop(view.columns[primary], ModuleDrag(view.session.name, "web", primary))
    qtbot.wait(100)
    assert window.confirmer.current is None and not view.notice.isVisible()

    lc.kill(secondary)
    wait_for(
        qtbot,
        lambda: view.card("web").state_text(secondary) == "ERROR",
        15,
        "secondary not shown as ERROR",
        lc.describe,
    )
    accepted, highlight = drop(
        view.columns[secondary], ModuleDrag(view.session.name, "web", primary)
    )
    assert accepted and highlight == "refused"  # the operator sees red while hovering
    wait_for(qtbot, lambda: view.notice.isVisible(), 5, "no refusal shown")
    assert f"{secondary} is not answering" in view.notice.text()
    assert window.confirmer.current is None  # refused before asking anything
    assert lc.module(primary, "web").state in (pb.STATE_PRIM, pb.STATE_ALONE)
