"""`mirrorpair demo` opens the console on its own two agents; where no display exists
it runs the agents only and says so. The demo, its agents and the console are real
processes; the console's connections are read from the kernel's socket table (ss)."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from node_agent.config.load import load_config
from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parents[2]


class Demo:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        cmd = [sys.executable, "-m", "node_agent.cli.main", "demo", "--dir", str(root)]
        self.root = root
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)  # fmt: skip
        self._lines: queue.Queue[str] = queue.Queue()
        self.out: list[str] = []
        threading.Thread(target=lambda: [self._lines.put(x) for x in self.proc.stdout],  # type: ignore[union-attr]
                         daemon=True).start()  # fmt: skip

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.out):
            assert time.monotonic() < deadline, f"no {text!r} in:\n{''.join(self.out)}"
            assert self.proc.poll() is None or not self._lines.empty(), "".join(self.out)
            with contextlib.suppress(queue.Empty):
                self.out.append(self._lines.get(timeout=0.5))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        assert self.proc.returncode == 0, "".join(self.out)
        assert not self.root.exists()
        left = subprocess.run(["pgrep", "-f", str(self.root)], capture_output=True, text=True)
        assert left.stdout == "", f"left running: {left.stdout}"


def _console_pids(root: Path) -> list[int]:
    res = subprocess.run(["pgrep", "-f", f"console.app --cluster-config {root}"],
                         capture_output=True, text=True)  # fmt: skip
    return [int(p) for p in res.stdout.split()]


def _connected_ports(pid: int) -> set[int]:
    """Remote ports of the TCP connections ``pid`` has established."""
    res = subprocess.run(["ss", "-Htnp", "state", "established"], capture_output=True,
                         text=True, check=True)  # fmt: skip
    ports = set()
    for line in res.stdout.splitlines():
        if f"pid={pid}," in line:
            peer = line.split()[3]
            ports.add(int(peer.rpartition(":")[2]))
    return ports


def test_demo_opens_the_console_connected_to_both_agents(tmp_path: Path) -> None:
    require_binary("ss")
    root = tmp_path / "demo"
    demo = Demo(root, dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    try:
        demo.wait_for("opening the console")
        demo.wait_for("Press Ctrl-C")
        cfg = load_config(root / "cluster.toml")
        api_ports = {int(n.api.rpartition(":")[2]) for n in cfg.nodes.values()}
        deadline = time.monotonic() + 30
        while True:  # the console dials both agents from its own process
            pids = _console_pids(root)
            if len(pids) == 1 and api_ports <= _connected_ports(pids[0]):
                break
            assert time.monotonic() < deadline, (pids, api_ports, "".join(demo.out))
            time.sleep(0.3)
    finally:
        demo.stop()  # ends the console too (checked: nothing of the demo left running)


def test_demo_without_a_display_runs_the_agents_and_says_why(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}  # fmt: skip
    demo = Demo(root, env)
    try:
        demo.wait_for("Press Ctrl-C")
        demo.wait_for("no display found (DISPLAY and WAYLAND_DISPLAY are unset)")
        demo.wait_for("console.app")
        text = "".join(demo.out)
        assert f"console.app --cluster-config {root / 'cluster.toml'}" in text  # how to watch
        assert _console_pids(root) == []
        assert demo.proc.poll() is None  # the agents keep running
    finally:
        demo.stop()
