"""Tray icon (worst colour of every cluster) and desktop notifications for alerts."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMenu, QSystemTrayIcon, QWidget

from console.model.alerts import Alert, AlertKind, Severity
from console.model.states import Colour
from console.ui.theme import light_icon

# A planned move, a stop of the secondary and a node coming back are worth a line in
# the list, not a popup; redundancy restored ends what a popup began.
POPUP_KINDS = {
    AlertKind.FAILOVER,
    AlertKind.DEGRADED,
    AlertKind.SPLIT_BRAIN,
    AlertKind.NODE_LOST,
    AlertKind.RESTORED,
}
_ICONS = {
    Severity.INFO: QSystemTrayIcon.MessageIcon.Information,
    Severity.WARNING: QSystemTrayIcon.MessageIcon.Warning,
    Severity.CRITICAL: QSystemTrayIcon.MessageIcon.Critical,
}


class TrayNotifier(QObject):
    notified = Signal(object)  # every Alert, popup or not (the window's alert list)

    def __init__(self, window: QWidget, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.history: list[Alert] = []
        self.tray: QSystemTrayIcon | None = None
        self._colour = Colour.GREY
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.tray = QSystemTrayIcon(light_icon(Colour.GREY, 32), self)
            self.tray.setToolTip("MirrorPair")
            menu = QMenu(window)
            menu.addAction("Show console", lambda: (window.showNormal(), window.raise_()))
            self.tray.setContextMenu(menu)
            self.tray.activated.connect(lambda _reason: (window.showNormal(), window.raise_()))
            self.tray.show()

    @property
    def available(self) -> bool:
        return self.tray is not None

    def set_colour(self, colour: Colour, tooltip: str) -> None:
        if self.tray is None:
            return
        if colour != self._colour:
            self._colour = colour
            self.tray.setIcon(light_icon(colour, 32))
        self.tray.setToolTip(tooltip)

    def notify(self, alert: Alert) -> None:
        self.history.append(alert)
        del self.history[:-500]
        self.notified.emit(alert)
        if self.tray is not None and alert.kind in POPUP_KINDS:
            self.tray.showMessage(alert.title, alert.message, _ICONS[alert.severity], 15000)
