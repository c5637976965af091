"""The console's layout on two REAL agents: cards never clipped by the detail panel,
elided table cells readable in full, Swap disabled with its reason, the alert area
acknowledged and cleared; and check boxes that can be seen on the dark theme."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QEvent, QPoint, QRect, Qt
from PySide6.QtGui import QColor, QHelpEvent, QImage
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QDockWidget,
    QLabel,
    QScrollArea,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from console.model.alerts import AlertKind
from console.ui.main_window import MainWindow
from console.ui.theme import style_sheet
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


def test_swap_is_disabled_with_the_reason_and_alerts_are_acknowledged(
    qtbot: Any, window: MainWindow, lc: LocalCluster
) -> None:
    primary, secondary = settled(qtbot, window, lc)
    view = window.current_view()
    assert view is not None
    view.select("web")
    button = window.findChild(QWidget, "swapButton")
    assert button is not None and button.isEnabled()
    alerts = window.alerts
    assert alerts.placeholder.isVisible() and not alerts.list.isVisible()

    stop_secondary(qtbot, window, lc)
    wait_for(qtbot, lambda: not button.isEnabled(), 5, "Swap still enabled")
    reason = f"No swap possible: {secondary} is STOP · NotReady, not a ready secondary"
    assert button.toolTip().startswith(reason), button.toolTip()
    # Hovering the disabled button shows that reason.
    centre = button.rect().center()
    QApplication.sendEvent(
        button, QHelpEvent(QEvent.Type.ToolTip, centre, button.mapToGlobal(centre))
    )
    wait_for(qtbot, QToolTip.isVisible, 3, "no tooltip on the disabled Swap")
    assert QToolTip.text().startswith(reason)
    QToolTip.hideText()

    rc, out, err = lc.cli("start", "web", "--node", secondary, "--yes")
    assert rc == 0, out + err
    wait_for(
        qtbot,
        lambda: AlertKind.RESTORED in [a.kind for a in window.notifier.history],
        30,
        "no 'redundancy restored'",
        lc.describe,
    )
    wait_for(qtbot, button.isEnabled, 5, "Swap not enabled again")
    # The alert area: the notice instead of the placeholder, new until acknowledged.
    assert alerts.list.isVisible() and not alerts.placeholder.isVisible()
    assert any("redundancy restored" in t for t in alerts.texts())
    assert alerts.list.item(0).font().bold()
    assert window.alerts_dock.windowTitle() == f"Alerts — {alerts.unacknowledged} new"
    alerts.ack_button.click()
    assert alerts.unacknowledged == 0 and window.alerts_dock.windowTitle() == "Alerts"
    assert not alerts.list.item(0).font().bold() and alerts.list.count() > 0
    assert not alerts.ack_button.isEnabled()
    alerts.clear_button.click()
    assert alerts.list.count() == 0 and alerts.placeholder.isVisible()
    assert not alerts.clear_button.isEnabled()


def indicator_contrast(box: QCheckBox) -> tuple[float, QImage]:
    """The largest brightness step between the check box's indicator and the background
    around it (0..255), and the picture."""
    image = box.grab().toImage()
    back = QColor(image.pixel(image.width() - 2, image.height() // 2)).lightness()
    height = image.height()
    best = 0.0
    for x in range(0, min(24, image.width())):  # the indicator is at the left
        for y in range(height):
            best = max(best, abs(QColor(image.pixel(x, y)).lightness() - back))
    return best, image


def test_check_boxes_are_visible_on_the_dark_theme(qtbot: Any) -> None:
    holder = QWidget()
    holder.setStyleSheet(style_sheet())  # the console's own sheet, as apply_theme sets it
    layout = QVBoxLayout(holder)
    unchecked, checked = QCheckBox(""), QCheckBox("")
    checked.setChecked(True)
    layout.addWidget(unchecked)
    layout.addWidget(checked)
    qtbot.addWidget(holder)
    holder.resize(200, 80)
    holder.show()
    qtbot.wait(50)
    edge, off = indicator_contrast(unchecked)
    fill, on = indicator_contrast(checked)
    assert edge >= 60, f"an unchecked box is {edge:.0f}/255 away from the background"
    assert fill >= 60, f"a checked box is {fill:.0f}/255 away from the background"
    assert off != on  # checked and unchecked look different
