"""Child process of test_tray_real.py: a TrayNotifier on a real X display with a real
system tray (trayer). Sends each popup alert, then reports as JSON what is on screen:
whether the icon docked in the tray, and the balloons shown (their title and text)."""

from __future__ import annotations

import json
import sys
import time

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QSystemTrayIcon

from console.model.alerts import Alert, AlertKind, Severity
from console.model.states import Colour
from console.ui.tray import TrayNotifier

ALERTS = [
    Alert(AlertKind.FAILOVER, Severity.CRITICAL, "desk", "Failover: web", "web now on node2"),
    Alert(AlertKind.MOVED, Severity.INFO, "desk", "Moved: web", "swapped by the operator"),
    Alert(AlertKind.DEGRADED, Severity.WARNING, "desk", "Degraded: web", "node1 runs alone"),
    Alert(AlertKind.SPLIT_BRAIN, Severity.CRITICAL, "desk", "Split brain: web", "both wrote"),
]


def visible() -> list[dict[str, object]]:
    out = []
    for w in QApplication.topLevelWidgets():
        if w.isVisible():
            texts = [lb.text() for lb in w.findChildren(QLabel) if lb.text()]
            out.append({"class": w.metaObject().className(), "texts": texts})
    return out


def main() -> None:
    app = QApplication(sys.argv)
    deadline = time.monotonic() + 10  # the tray host may still be starting
    while not QSystemTrayIcon.isSystemTrayAvailable() and time.monotonic() < deadline:
        time.sleep(0.1)
    window = QMainWindow()
    window.show()
    notifier = TrayNotifier(window)
    notifier.set_colour(Colour.RED, "MirrorPair: desk needs attention")
    seen: list[list[dict[str, object]]] = []

    def step(i: int) -> None:
        if i:
            seen.append(visible())  # what the previous alert put on screen
        if i == len(ALERTS):
            tip = notifier.tray.toolTip() if notifier.tray else ""
            print(json.dumps({"available": notifier.available, "screens": seen, "tooltip": tip,
                              "desktop": notifier.desktop is not None,
                              "delivery": notifier.delivery}))  # fmt: skip
            app.quit()
            return
        notifier.notify(ALERTS[i])
        QTimer.singleShot(800, lambda: step(i + 1))

    QTimer.singleShot(300, lambda: step(0))
    app.exec()


if __name__ == "__main__":
    main()
