"""Alerts on a desktop without a system tray (GNOME): the console sends them to the
desktop's notification service. Here a REAL one: dunst, on its own X display (Xvfb)
and a private D-Bus session bus (dbus-daemon), records every notification it shows
through a rule script. The console runs offscreen, where Qt finds no tray, on two
REAL agents whose failover raises the alert. Without any service (no bus, a bus with
no notification server, a bus that never answers) the console neither crashes nor
hangs, and says that alerts cannot pop up."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QTimer

from console.model.alerts import Alert, AlertKind, Severity
from console.settings.secrets import SecretStore
from console.ui.main_window import MainWindow
from tests.conftest import require_binary
from tests.console.live import HangingListener, console_window, wait_for
from tests.console.test_console_truth_live import settled
from tests.integration.agents import LocalCluster

NOTIFICATIONS = "org.freedesktop.Notifications"


def has_owner(address: str, name: str) -> bool:
    r = subprocess.run(
        ["dbus-send", f"--bus={address}", "--print-reply", "--dest=org.freedesktop.DBus",
         "/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner", f"string:{name}"],
        capture_output=True, text=True, timeout=10,
    )  # fmt: skip
    return r.returncode == 0 and "boolean true" in r.stdout


@pytest.fixture
def session_bus(tmp_path: Path) -> Iterator[str]:
    """A private D-Bus session bus of its own; its address."""
    require_binary("dbus-daemon")
    require_binary("dbus-send")
    proc = subprocess.Popen(
        ["dbus-daemon", "--session", "--nofork", "--print-address",
         f"--address=unix:path={tmp_path / 'bus'}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    address = proc.stdout.readline().strip()
    try:
        assert address.startswith("unix:"), f"dbus-daemon said {address!r}"
        yield address
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def dunst(display: str, session_bus: str, tmp_path: Path) -> Iterator[Path]:
    """dunst serving org.freedesktop.Notifications on the session bus; the file its rule
    script appends each notification to (app, summary, body, urgency; tab-separated)."""
    require_binary("dunst")
    shown = tmp_path / "shown.tsv"
    script = tmp_path / "record.sh"
    script.write_text(f'#!/bin/sh\nprintf "%s\\t%s\\t%s\\t%s\\n" "$1" "$2" "$3" "$5" >> {shown}\n')
    script.chmod(0o755)
    config = tmp_path / "dunstrc"
    config.write_text(f'[global]\n    monitor = 0\n\n[record]\n    summary = "*"\n'
                      f'    script = {script}\n')  # fmt: skip
    env = {**os.environ, "DISPLAY": display, "DBUS_SESSION_BUS_ADDRESS": session_bus}
    proc = subprocess.Popen(
        ["dunst", "-config", str(config)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while not has_owner(session_bus, NOTIFICATIONS):
            assert proc.poll() is None, f"dunst exited: {proc.stderr.read() if proc.stderr else ''}"
            assert time.monotonic() < deadline, "dunst did not take org.freedesktop.Notifications"
            time.sleep(0.1)
        yield shown
    finally:
        proc.terminate()
        proc.wait(10)


def shown_lines(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split("\t") for line in path.read_text().splitlines()]


def test_a_failover_reaches_a_desktop_without_a_tray(
    qtbot: Any,
    run: Callable[..., Any],
    tmp_path: Path,
    dunst: Path,
    session_bus: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", session_bus)
    with LocalCluster(tmp_path / "cluster") as lc, console_window(qtbot, run, lc) as window:
        notifier = window.notifier
        assert notifier.tray is None and notifier.desktop is not None  # offscreen: no tray
        primary, secondary = settled(qtbot, window, lc)
        lc.kill(primary)
        title = f"Failover: web now runs on {secondary}"
        wait_for(
            qtbot,
            lambda: any(line[1] == title for line in shown_lines(dunst)),
            30,
            "dunst did not show the failover",
            lambda: (
                f"shown: {shown_lines(dunst)}\nalerts: {notifier.history}\n"
                f"delivery: {notifier.delivery}\n{lc.describe()}"
            ),
        )
        line = next(line for line in shown_lines(dunst) if line[1] == title)
        assert line[0] == "MirrorPair" and f"from {primary} to {secondary}" in line[2]
        assert line[3] == "CRITICAL"
        assert window.delivery.text() == "Alerts: desktop notifications"
        # A planned move is no popup (as with the tray): only the list has it.
        assert all("moved to" not in line[1] for line in shown_lines(dunst))


def alert(title: str) -> Alert:
    return Alert(AlertKind.FAILOVER, Severity.CRITICAL, "c", title, "web now on node2")


@pytest.mark.parametrize("bus", ["none", "no-server", "silent"])
def test_without_a_notification_service_the_console_says_so_and_goes_on(
    qtbot: Any,
    run: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    bus: str,
    request: pytest.FixtureRequest,
) -> None:
    hanging = None
    if bus == "none":
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path / 'no-bus'}")
        why = "no desktop notifications: "
    elif bus == "no-server":
        address = request.getfixturevalue("session_bus")
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
        why = "no desktop notifications: no notification service on the session bus"
    else:  # accepts the connection, never says a word: a frozen bus
        hanging = HangingListener()
        host, port = hanging.address.rsplit(":", 1)
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"tcp:host={host},port={port}")
        why = "no desktop notifications: the session bus did not answer within 1s"
    window = MainWindow([], SecretStore(), settings_path=None)
    ticks: list[float] = []
    timer = QTimer(window)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(100)
    try:
        desktop = window.notifier.desktop
        assert desktop is not None
        desktop.timeout_s = 1.0
        window.notifier.notify(alert("Failover: web now runs on node2"))
        listed = window.alerts.texts()
        assert listed[0].endswith("Failover: web now runs on node2 — web now on node2")
        wait_for(qtbot, lambda: window.delivery.text().startswith(f"⚠ {why}"), 10,
                 "no word that alerts cannot pop up", lambda: window.delivery.text())  # fmt: skip
        assert desktop.delivered == []
        # The GUI went on meanwhile (a hang would show as a gap in the ticks).
        wait_for(qtbot, lambda: len(ticks) >= 5, 5, "the GUI does not tick")
        gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
        assert max(gaps) < 0.6, gaps
        window.notifier.notify(alert("Failover: db now runs on node1"))  # and again
        qtbot.wait(300)
        assert len(window.alerts.texts()) == 2
    finally:
        run(window.shutdown(), 15)
        window.close()
        window.deleteLater()
        if hanging is not None:
            hanging.close()
