"""The alert area at the bottom of the window: newest first, new ones in bold until the
operator acknowledges them, a Clear button, and a placeholder only while it is empty."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from console.model.alerts import Alert, Severity
from console.model.states import Colour
from console.ui.theme import MUTED, light_icon

SEVERITY_COLOUR = {
    Severity.INFO: Colour.GREEN,
    Severity.WARNING: Colour.ORANGE,
    Severity.CRITICAL: Colour.RED,
}
PLACEHOLDER = (
    "No alerts. Failovers, degraded replication, split brain, lost nodes and restored "
    "redundancy appear here and as desktop notifications."
)
MAX_ALERTS = 300


class AlertList(QWidget):
    unacknowledged_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setObjectName("alertList")
        self.list.setWordWrap(True)  # a long alert wraps, it is not cut
        self.placeholder = QLabel(PLACEHOLDER)
        self.placeholder.setObjectName("muted")
        self.placeholder.setWordWrap(True)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.placeholder)
        self.pages.addWidget(self.list)
        self.ack_button = QPushButton("Acknowledge")
        self.ack_button.setToolTip("Mark every alert as seen (they stay in the list)")
        self.ack_button.clicked.connect(self.acknowledge)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Remove every alert from the list")
        self.clear_button.clicked.connect(self.clear)
        buttons = QVBoxLayout()
        buttons.addWidget(self.ack_button)
        buttons.addWidget(self.clear_button)
        buttons.addStretch(1)
        row = QHBoxLayout(self)
        row.setContentsMargins(6, 4, 6, 4)
        row.addWidget(self.pages, 1)
        row.addLayout(buttons)
        self._new = 0
        self._refresh()

    @property
    def unacknowledged(self) -> int:
        return self._new

    def add(self, alert: Alert) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(alert.time or time.time()))
        text = f"{stamp}  {alert.title} — {alert.message}".rstrip(" —")
        item = QListWidgetItem(light_icon(SEVERITY_COLOUR[alert.severity]), text)
        item.setToolTip(text)
        font = QFont(self.list.font())
        font.setBold(True)
        item.setFont(font)
        self.list.insertItem(0, item)
        while self.list.count() > MAX_ALERTS:
            self.list.takeItem(self.list.count() - 1)
        self._new = min(self._new + 1, self.list.count())
        self._refresh()

    def acknowledge(self) -> None:
        for i in range(self.list.count()):
            item = self.list.item(i)
            font = item.font()
            font.setBold(False)
            item.setFont(font)
            item.setForeground(QBrush(QColor(MUTED)))
        self._new = 0
        self._refresh()

    def clear(self) -> None:
        self.list.clear()
        self._new = 0
        self._refresh()

    def texts(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def _refresh(self) -> None:
        empty = self.list.count() == 0
        self.pages.setCurrentWidget(self.placeholder if empty else self.list)
        self.ack_button.setEnabled(self._new > 0)
        self.clear_button.setEnabled(not empty)
        self.unacknowledged_changed.emit(self._new)
