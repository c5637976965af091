"""AppResource with real shell commands and a real background server."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from pathlib import Path

import pytest

from node_agent import procfs
from node_agent.config.model import ModuleConfig, VipConfig
from node_agent.resources.app import AppResource, ResourceResult
from node_agent.resources.common import close_drains


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __call__(self, level: str, message: str) -> None:
        self.lines.append((level, message))

    def messages(self) -> list[str]:
        return [m for _, m in self.lines]


def run(coro):
    return asyncio.run(coro)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid: int) -> bool:
    """True if pid exists and is not a zombie (an unreaped killed process)."""
    return procfs.running(pid)


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def app(log: Log, **kw) -> AppResource:
    kw.setdefault("start", "true")
    kw.setdefault("stop", "true")
    return AppResource("web", log=log, **kw)


def test_background_http_server_lifecycle(tmp_path: Path) -> None:
    port = free_port()
    pidfile = tmp_path / "app.pid"
    log = Log()
    res = app(
        log,
        start=(
            f"echo starting web on {port}; "
            f"{sys.executable} -m http.server {port} --bind 127.0.0.1 >/dev/null 2>&1 & "
            f"echo $! > {pidfile}"
        ),
        check=f"kill -0 $(cat {pidfile})",
        stop=f"kill $(cat {pidfile})",
        start_timeout_s=10,
    )
    began = time.monotonic()
    started = run(res.start())
    assert started.ok, started
    assert started.returncode == 0
    assert time.monotonic() - began < 5  # did not wait for the daemon
    assert f"starting web on {port}" in started.output
    assert ("info", f"start: starting web on {port}") in log.lines
    pid = int(pidfile.read_text())

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False

    assert wait_for(listening)
    assert run(res.check()).ok
    stopped = run(res.stop())
    assert stopped.ok, stopped
    assert wait_for(lambda: not alive(pid))
    # kill -0 still succeeds on the zombie until init reaps it (lazily in some containers).
    assert wait_for(lambda: not run(res.check()).ok, 10)
    checked = run(res.check())
    assert checked.returncode not in (0, None)
    assert "exit status" in checked.detail


def test_daemon_holding_stdout_does_not_block(tmp_path: Path) -> None:
    # The backgrounded sleep inherits the pipe and keeps it open for 30 s.
    pidfile = tmp_path / "sleep.pid"
    log = Log()
    res = app(log, start=f"echo hello; sleep 30 & echo $! > {pidfile}", start_timeout_s=10)

    async def scenario() -> ResourceResult:
        try:
            return await res.start()
        finally:
            close_drains()

    began = time.monotonic()
    try:
        result = run(scenario())
    finally:
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), 9)
    assert time.monotonic() - began < 3
    assert result.ok
    assert result.output == "hello"


def test_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    log = Log()
    # The child ignores SIGTERM (inherited across exec), so only the SIGKILL escalation ends it.
    res = app(
        log,
        start=f"(trap '' TERM; exec sleep 60) & echo $! > {pidfile}; echo waiting; sleep 60",
        start_timeout_s=1,
    )
    began = time.monotonic()
    result = run(res.start())
    took = time.monotonic() - began
    assert not result.ok
    assert "timed out after 1s" in result.detail
    assert "waiting" in result.output
    assert 1 <= took < 6
    child = int(pidfile.read_text())
    assert wait_for(lambda: not alive(child), 3), "the TERM-ignoring child survived"
    assert any(level == "error" and "timed out" in m for level, m in log.lines)


def test_failing_command_reports_status_and_output() -> None:
    log = Log()
    res = app(log, stop="echo cannot stop >&2; exit 3")
    result = run(res.stop())
    assert not result.ok
    assert result.returncode == 3
    assert "exit status 3" in result.detail
    assert result.output == "cannot stop"  # stderr is captured too
    assert ("info", "stop: cannot stop") in log.lines


def test_missing_commands() -> None:
    res = app(Log(), start="", stop="  ")
    assert run(res.check()) == ResourceResult(ok=True, detail="no check command")
    assert run(res.start()).ok
    assert run(res.stop()).detail == "no stop command"


def test_environment_and_cwd(tmp_path: Path) -> None:
    res = AppResource(
        "db",
        start='echo "$MIRRORPAIR_MODULE|$MIRRORPAIR_NODE|$MIRRORPAIR_VIP|$EXTRA|$(pwd)"',
        stop="true",
        env={"EXTRA": "x y", "MIRRORPAIR_NODE": "overridden?"},
        cwd=str(tmp_path),
        log=Log(),
        node="node2",
        vip="10.0.0.100/24",
    )
    assert run(res.start()).output == f"db|node2|10.0.0.100|x y|{tmp_path}"


def test_from_config() -> None:
    cfg = ModuleConfig(
        name="m1",
        kind="app",
        preferred="node1",
        start='echo "$MIRRORPAIR_VIP $MIRRORPAIR_NODE"',
        stop="exit 1",
        check_timeout_s=1.5,
        vip=VipConfig(address="192.0.2.7/24", interface={"node1": "eth0"}),
    )
    res = AppResource.from_config(cfg, node="node1", log=Log())
    assert res.check_timeout_s == 1.5
    assert run(res.start()).output == "192.0.2.7 node1"
    assert not run(res.stop()).ok
    no_vip = AppResource.from_config(
        ModuleConfig(name="m2", kind="app", preferred="node1", start="echo [$MIRRORPAIR_VIP]"),
        node="node1",
        log=Log(),
    )
    assert run(no_vip.start()).output == "[]"


def test_bad_cwd_is_reported() -> None:
    res = app(Log(), cwd="/nonexistent/dir")
    result = run(res.start())
    assert not result.ok
    assert result.returncode is None
    assert "could not run" in result.detail


def test_output_is_capped() -> None:
    log = Log()
    res = app(
        log,
        start="i=0; while [ $i -lt 3000 ]; do echo 0123456789012345678901234567890123456789; "
        "i=$((i+1)); done",
    )
    result = run(res.start())
    assert result.ok
    assert len(result.output) <= 64 * 1024 + 100
    assert result.output.endswith("[output truncated at 64 KiB]")
    assert sum(1 for m in log.messages() if m.startswith("start: 0123")) < 1700


def test_check_is_quiet_on_success() -> None:
    log = Log()
    res = app(log, check="echo fine")
    assert run(res.check()).ok
    assert all(level == "debug" for level, _ in log.lines)


@pytest.mark.parametrize("signal_no", [9, 15])
def test_killed_by_signal(signal_no: int) -> None:
    result = run(app(Log(), start=f"kill -{signal_no} $$").start())
    assert not result.ok
    assert result.returncode == -signal_no
    assert f"killed by signal {signal_no}" in result.detail


def test_cancellation_kills_the_command(tmp_path: Path) -> None:
    pidfile = tmp_path / "p.pid"
    res = app(Log(), start=f"echo $$ > {pidfile}; exec sleep 60", start_timeout_s=100)

    async def scenario() -> None:
        task = asyncio.create_task(res.start())
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.5)  # the background reaper collects the killed command

    run(scenario())
    assert wait_for(lambda: not alive(int(pidfile.read_text())))
