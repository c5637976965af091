"""Tray icon (worst colour of every cluster) and desktop notifications for alerts: tray
balloons where the desktop has a system tray, the desktop's notification service where
it has none (GNOME), and the alert list always."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMenu, QSystemTrayIcon, QWidget

from console.model.alerts import Alert, AlertKind, Severity
from console.model.states import Colour
from console.ui.desktop_notify import DesktopNotifications
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
    delivery_changed = Signal(str)  # how popups reach the operator, or why they do not

    def __init__(self, window: QWidget, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.history: list[Alert] = []
        self.tray: QSystemTrayIcon | None = None
        self.desktop: DesktopNotifications | None = None
        self._colour = Colour.GREY
        self.delivery = "tray balloons"
        if not QSystemTrayIcon.isSystemTrayAvailable():
            self.desktop = DesktopNotifications(self._delivery)
            self.delivery = "no system tray: desktop notifications"
        else:
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
        if alert.kind not in POPUP_KINDS:
            return
        if self.tray is not None:
            self.tray.showMessage(alert.title, alert.message, _ICONS[alert.severity], 15000)
        elif self.desktop is not None:
            self.desktop.notify(alert.title, alert.message, alert.severity)

    def _delivery(self, text: str) -> None:
        if text != self.delivery:
            self.delivery = text
            self.delivery_changed.emit(text)

    async def close(self) -> None:
        if self.desktop is not None:
            await self.desktop.close()
