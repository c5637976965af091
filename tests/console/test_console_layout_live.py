"""The console's layout on two REAL agents: cards never clipped by the detail panel,
elided table cells readable in full."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QScrollArea,
)

from console.ui.main_window import MainWindow
from tests.console.live import console_window, wait_for
from tests.console.test_console_truth_live import settled
from tests.integration.agents import LocalCluster


@pytest.fixture
def lc(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path / "cluster", modules=("web", "access-control-server")) as c:
        c.wait_settled("web")
        c.wait_settled("access-control-server")
        yield c


@pytest.fixture
def window(qtbot: Any, run: Callable[..., Any], lc: LocalCluster) -> Iterator[MainWindow]:
    with console_window(qtbot, run, lc) as w:
        yield w


def stop_secondary(qtbot: Any, w: MainWindow, lc: LocalCluster) -> tuple[str, str]:
    """The secondary of web stopped: the card's longest badges and reason show."""
    primary, secondary = settled(qtbot, w, lc)
    rc, out, err = lc.cli("stop", "web", "--node", secondary, "--yes")
    assert rc == 0, out + err
    view = w.current_view()
    assert view is not None
    wait_for(
        qtbot,
        lambda: view.card("web").state_text(primary) == "ALONE · Ready",
        15,
        "web not shown ALONE",
        lc.describe,
    )
    return primary, secondary


def clipped(w: MainWindow) -> list[str]:
    """What of the cards is cut: a card past its column's visible width, or a text of a
    card narrower than it needs or past the card's edge."""
    view = w.current_view()
    assert view is not None
    out = []
    for column in view.columns.values():
        viewport = column.findChild(QScrollArea).viewport()
        seen = QRect(viewport.mapToGlobal(QPoint(0, 0)), viewport.size())
        for card in column.cards():
            box = QRect(card.mapToGlobal(QPoint(0, 0)), card.size())
            if box.left() < seen.left() or box.right() > seen.right():
                out.append(f"card {card.module}: {box} outside its column {seen}")
            for label in card.findChildren(QLabel):
                if not label.isVisible() or not label.text():
                    continue
                at = QRect(label.mapTo(card, QPoint(0, 0)), label.size())
                if not card.rect().contains(at):
                    out.append(f"{card.module} {label.text()!r}: {at} past the card")
                elif label.width() < label.minimumSizeHint().width():
                    out.append(f"{card.module} {label.text()!r}: {label.width()} px, too narrow")
    return out


def test_cards_are_never_clipped_by_the_detail_panel(
    qtbot: Any, window: MainWindow, lc: LocalCluster
) -> None:
    stop_secondary(qtbot, window, lc)
    dock = window.findChild(QDockWidget, "detailDock")
    assert dock is not None
    for width, panel in ((1480, 600), (1180, 600), (1100, 900), (1024, 2000)):
        window.resize(width, 760)
        window.resizeDocks([dock], [panel], Qt.Orientation.Horizontal)  # drag the splitter
        qtbot.wait(150)
        assert clipped(window) == [], f"window {width} px, panel asked {panel} px"
    assert dock.width() < 900  # the panel gave way, not the cards


def test_elided_cells_show_their_whole_text(
    qtbot: Any, window: MainWindow, lc: LocalCluster
) -> None:
    stop_secondary(qtbot, window, lc)
    view = window.current_view()
    assert view is not None
    view.select("web")
    view.table_toggle.setChecked(True)
    detail = window.detail
    tables = {
        "logs": detail.log_filter,
        "timeline": detail.transitions,
        "checkers": detail.checkers,
        "modules": view.table_proxy,
    }
    wait_for(qtbot, lambda: detail.log_filter.rowCount() > 5, 10, "no log entries")
    for name, model in tables.items():
        assert model.rowCount() > 0 or name == "checkers", name
        for row in range(model.rowCount()):
            for col in range(model.columnCount()):
                index = model.index(row, col)
                text = index.data(Qt.ItemDataRole.DisplayRole)
                if text:
                    tip = index.data(Qt.ItemDataRole.ToolTipRole) or ""
                    assert str(text) in tip, f"{name} ({row}, {col}): {text!r} tip {tip!r}"
