"""No network call blocks the GUI thread: one agent address accepts TCP and then never
answers (the TLS handshake hangs), the other node is a real agent. A QTimer in the window
keeps its rate and the real node's card keeps following its state."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QTimer

from console.ui.main_window import MainWindow
from protos import mirrorpair_pb2 as pb
from tests.console.live import HangingListener, entry_for, open_console, wait_for
from tests.integration.agents import LocalCluster

TICK_MS = 50


@pytest.fixture
def lc(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path / "cluster") as cluster:
        cluster.wait_settled("web")
        yield cluster


@pytest.fixture
def hang() -> Iterator[HangingListener]:
    listener = HangingListener()
    yield listener
    listener.close()


class TickRecorder:
    """Records when a QTimer owned by the window fires."""

    def __init__(self, window: MainWindow) -> None:
        self.times: list[float] = []
        self.timer = QTimer(window)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(lambda: self.times.append(time.monotonic()))
        self.timer.start()

    def since(self, t0: float) -> list[float]:
        return [t for t in self.times if t >= t0]


def in_thread(fn: Callable[[], Any]) -> threading.Thread:
    """Run a blocking helper (the test's own sync gRPC client) off the GUI thread."""
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


def test_hanging_agent_blocks_nothing(
    qtbot: Any, run: Callable[..., Any], lc: LocalCluster, hang: HangingListener
) -> None:
    window = open_console(qtbot, entry_for(lc, node1=hang.address))
    try:
        view = window.current_view()
        assert view is not None
        ticks = TickRecorder(window)
        t0 = time.monotonic()

        # node1 (the hanging address) goes ERROR with a reason; node2 shows its real state.
        wait_for(
            qtbot,
            lambda: "web" in view.cards and view.card("web").state_text("node1") == "ERROR",
            15,
            "the hanging node was not shown as ERROR",
        )
        assert hang.accepted, "the console never dialled the hanging address"
        assert "hangs" in view.columns["node1"].error.text()
        real = lc.module("node2", "web")
        shown = view.card("web").state_text("node2")
        assert shown.startswith(pb.ModuleState.Name(real.state).removeprefix("STATE_")), shown

        # The real node keeps updating while node1 keeps hanging (reconnects included):
        # stop web on node2 from outside the console, then start it again.
        in_thread(
            lambda: lc.client("node2")._stub.RunCommand(
                pb.CommandRequest(module="web", command=pb.COMMAND_STOP, issued_by="test"),
                timeout=10,
            )
        )
        wait_for(
            qtbot,
            lambda: view.card("web").state_text("node2") == "STOP · NotReady",
            15,
            "node2's card did not follow a real stop",
            lc.describe,
        )
        assert view.card("web").pill_colour("node2") == "red"
        in_thread(
            lambda: lc.client("node2")._stub.RunCommand(
                pb.CommandRequest(module="web", command=pb.COMMAND_START, issued_by="test"),
                timeout=10,
            )
        )
        wait_for(
            qtbot,
            lambda: view.card("web").state_text("node2") != "STOP · NotReady",
            15,
            "node2's card did not follow a real start",
            lc.describe,
        )
        qtbot.wait(3 * 1000)  # several more connect attempts to the hanging address
        assert len(hang.accepted) >= 2, "the console did not keep retrying node1"
        assert view.card("web").state_text("node1") == "ERROR"

        elapsed = time.monotonic() - t0
        fired = ticks.since(t0)
        gaps = [b - a for a, b in zip(fired, fired[1:], strict=False)]
        expected = elapsed * 1000 / TICK_MS
        # Lenient for a loaded 2-core machine, but a single blocking connect (2 s timeout)
        # or a blocked handshake would blow both limits.
        assert len(fired) >= 0.6 * expected, (len(fired), expected)
        assert max(gaps) < 1.0, f"the GUI thread stalled for {max(gaps):.2f}s"
    finally:
        run(window.shutdown(), 15)
        window.close()
        window.deleteLater()


def test_frozen_agent_is_detected_and_recovers(
    qtbot: Any, run: Callable[..., Any], lc: LocalCluster
) -> None:
    """SIGSTOP keeps the agent's TCP connection open but silent: the stream watchdog must
    still show ERROR, and the console must recover after SIGCONT."""
    import os
    import signal

    window = open_console(qtbot, entry_for(lc))
    proc = lc.agents["node2"].proc
    assert proc is not None
    try:
        view = window.current_view()
        assert view is not None
        wait_for(
            qtbot,
            lambda: "web" in view.cards and view.card("web").state_text("node2").endswith("Ready"),
            15,
            "node2 not shown",
            lc.describe,
        )
        os.kill(proc.pid, signal.SIGSTOP)
        wait_for(
            qtbot,
            lambda: view.card("web").state_text("node2") == "ERROR",
            20,
            "a frozen agent was not detected",
        )
        os.kill(proc.pid, signal.SIGCONT)
        wait_for(
            qtbot,
            lambda: view.card("web").state_text("node2") != "ERROR",
            20,
            "the console did not recover after the agent woke up",
            lc.describe,
        )
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        run(window.shutdown(), 15)
        window.close()
        window.deleteLater()
