"""`mirrorpair demo` opens the console on its own two agents; where no display exists
it runs the agents only, says so, and prints a way to watch that works: the console
command to run over `ssh -X` -- run here as printed, on an X server reached over TCP as a
forwarded display is. The demo, its agents and the console are real processes; the
console's connections are read from the kernel's socket table (ss)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from node_agent.config.load import load_config
from tests.conftest import require_binary
from tests.integration.demo_run import MIRRORPAIR, Demo

NO_DISPLAY = {k: v for k, v in os.environ.items()
              if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}  # fmt: skip


def _console_pids(root: Path) -> list[int]:
    """The console processes of this demo: `mirrorpair ... --key <root>/admin.key console`."""
    res = subprocess.run(["pgrep", "-f", "--", f"--key {root}/admin.key console"],
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


def _wait_connected(pid_of: object, root: Path, demo: Demo, timeout: float = 30) -> None:
    """Until one console process is connected to both agents' API ports."""
    cfg = load_config(root / "cluster.toml")
    api_ports = {int(n.api.rpartition(":")[2]) for n in cfg.nodes.values()}
    deadline = time.monotonic() + timeout
    while True:
        pids = pid_of()  # type: ignore[operator]
        if len(pids) == 1 and api_ports <= _connected_ports(pids[0]):
            return
        assert time.monotonic() < deadline, (pids, api_ports, "".join(demo.out))
        time.sleep(0.3)


@pytest.fixture
def tcp_display() -> Iterator[str]:
    """An X server reached over TCP, as `ssh -X` forwards one (DISPLAY=localhost:10.0)."""
    require_binary("Xvfb")
    read, write = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24", "-listen", "tcp"],
        pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write)
    with os.fdopen(read) as f:
        number = f.readline().strip()
    assert number, "Xvfb did not report a display"
    try:
        yield f"localhost:{number}.0"
    finally:
        xvfb.terminate()
        xvfb.wait(10)


def test_demo_opens_the_console_connected_to_both_agents(tmp_path: Path) -> None:
    require_binary("ss")
    root = tmp_path / "demo"
    demo = Demo(root, dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    try:
        demo.wait_for("opening the console")
        demo.wait_for("Press Ctrl-C")
        _wait_connected(lambda: _console_pids(root), root, demo)
    finally:
        demo.stop()  # ends the console too (checked: nothing of the demo left running)


def test_demo_without_a_display_prints_a_way_to_watch_that_works(
    tmp_path: Path, tcp_display: str
) -> None:
    require_binary("ss")
    root = tmp_path / "demo"
    demo = Demo(root, NO_DISPLAY)
    console: subprocess.Popen[bytes] | None = None
    try:
        demo.wait_for("Press Ctrl-C")
        demo.wait_for("no display: DISPLAY and WAYLAND_DISPLAY are unset: running the agents")
        demo.wait_for("admin.key console")  # the line after "and run there:"
        assert demo.line_after("log in with X forwarding:").startswith("ssh -X ")
        printed = demo.line_after("and run there:")
        assert printed.startswith(MIRRORPAIR + " --config ")  # a full path: runs as pasted
        assert printed == demo.line(" status").removesuffix(" status") + " console"
        assert _console_pids(root) == []  # not opened here
        assert demo.proc.poll() is None  # the agents keep running
        # What the admin does after `ssh -X`: paste the line; the display is forwarded.
        env = dict(NO_DISPLAY, DISPLAY=tcp_display)
        console = subprocess.Popen(["bash", "-c", printed], env=env, cwd="/",
                                   stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        _wait_connected(lambda: [console.pid], root, demo)  # type: ignore[union-attr]
        assert console.poll() is None, "the console exited"
    finally:
        if console is not None:
            console.terminate()  # the console closes its window on SIGTERM
            console.wait(30)
        demo.stop()
