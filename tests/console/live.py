"""Helpers for console tests against REAL agents (tests/integration/agents.py)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from pytestqt.exceptions import TimeoutError as QtTimeoutError

from console.client.node_client import Timeouts
from console.settings.clusters import ClusterEntry, entry_from_cluster_toml
from console.settings.secrets import SecretStore
from console.ui.main_window import MainWindow
from tests.integration.agents import LocalCluster

# Short timeouts: the tests want ERROR shown within seconds of a failure.
TEST_TIMEOUTS = Timeouts(connect_s=2.0, rpc_s=3.0, command_s=10.0, idle_s=3.0, probe_s=2.0)


def entry_for(lc: LocalCluster, **overrides: str) -> ClusterEntry:
    demo = lc.cluster
    entry = entry_from_cluster_toml(demo.config_path, demo.admin_cert, demo.admin_key)
    if overrides:
        from dataclasses import replace

        entry = replace(entry, **overrides)
    return entry


def open_console(qtbot: Any, entry: ClusterEntry) -> MainWindow:
    window = MainWindow([entry], SecretStore(), settings_path=None, timeouts=TEST_TIMEOUTS)
    window.resize(1300, 800)
    window.start()
    window.show()
    return window


@contextlib.contextmanager
def console_window(qtbot: Any, run: Callable[..., Any], lc: LocalCluster) -> Iterator[MainWindow]:
    """The console on ``lc``, shut down cleanly afterwards (its streams closed first)."""
    w = open_console(qtbot, entry_for(lc))
    try:
        yield w
    finally:
        run(w.shutdown(), 15)
        w.close()
        w.deleteLater()


def wait_for(
    qtbot: Any,
    condition: Callable[[], bool],
    timeout_s: float,
    what: str,
    describe: Callable[[], str] = lambda: "",
) -> None:
    """qtbot.waitUntil with a message saying what did not happen."""
    try:
        qtbot.waitUntil(condition, timeout=int(timeout_s * 1000))
    except (AssertionError, QtTimeoutError):
        raise AssertionError(f"{what}: not within {timeout_s:g}s\n{describe()}") from None


def closed_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (connections are refused)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class HangingListener:
    """A TCP port that accepts connections and never says a word: a TLS handshake to it
    hangs until the client gives up (a frozen agent, a half-open firewall)."""

    def __init__(self, host: str = "127.0.0.3") -> None:
        self._sock = socket.socket()
        self._sock.bind((host, 0))
        self._sock.listen(16)
        self.address = f"{host}:{self._sock.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted.append(conn)  # kept open, never read

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        for c in self.accepted:
            c.close()
        self._sock.close()
