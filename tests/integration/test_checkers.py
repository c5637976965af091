"""Checker probes against real sockets, interfaces and processes."""

from __future__ import annotations

import asyncio
import json
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from node_agent.config.model import CheckerConfig, CheckerKind
from node_agent.resources.app import AppResource
from node_agent.resources.checkers import (
    CheckResult,
    CommandChecker,
    InterfaceChecker,
    PingChecker,
    ProcessChecker,
    TcpChecker,
    make_checker,
    split_host_port,
)
from tests.conftest import require_binary, require_root


def probe(kind: CheckerKind, target: str, app: AppResource | None = None, **kw) -> CheckResult:
    cfg = CheckerConfig(name=f"{kind.value}-check", kind=kind, target=target, **kw)
    return asyncio.run(make_checker(cfg, app).check())


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once it is closed


def test_make_checker_kinds() -> None:
    app = AppResource("m", start="true", stop="true", log=lambda level, msg: None)
    expected = {
        CheckerKind.PROCESS: ProcessChecker,
        CheckerKind.TCP: TcpChecker,
        CheckerKind.PING: PingChecker,
        CheckerKind.INTERFACE: InterfaceChecker,
        CheckerKind.COMMAND: CommandChecker,
    }
    for kind, cls in expected.items():
        assert isinstance(make_checker(CheckerConfig("c", kind, "x"), app), cls)
    with pytest.raises(ValueError, match="process"):
        make_checker(CheckerConfig("c", CheckerKind.PROCESS, ""), None)


def test_tcp_listening_and_closed(listener: int) -> None:
    up = probe(CheckerKind.TCP, f"127.0.0.1:{listener}")
    assert up.ok, up
    down = probe(CheckerKind.TCP, f"127.0.0.1:{closed_port()}")
    assert not down.ok
    assert "refused" in down.detail.lower()


def test_tcp_timeout() -> None:
    # A listening socket whose backlog is full and never accepted: further SYNs go unanswered.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(0)
        port = s.getsockname()[1]
        fillers = []
        try:
            for _ in range(4):
                c = socket.socket()
                c.setblocking(False)
                c.connect_ex(("127.0.0.1", port))
                fillers.append(c)
            time.sleep(0.1)
            began = time.monotonic()
            result = probe(CheckerKind.TCP, f"127.0.0.1:{port}", timeout_s=0.5)
            took = time.monotonic() - began
        finally:
            for c in fillers:
                c.close()
    assert not result.ok
    assert "timed out after 0.5s" in result.detail
    assert took < 2


def test_tcp_bad_target() -> None:
    assert not probe(CheckerKind.TCP, "no-port-here").ok
    assert split_host_port("[::1]:80") == ("::1", 80)
    with pytest.raises(ValueError):
        split_host_port("host:99999")


def test_ping() -> None:
    require_binary("ping")
    result = probe(CheckerKind.PING, "127.0.0.1", timeout_s=1)
    assert result.ok, result
    unresolvable = probe(CheckerKind.PING, "no-such-host.invalid", timeout_s=1)
    assert not unresolvable.ok


def in_fresh_netns(setup: str, code: str) -> dict:
    """Run a probe in a new, empty network namespace (only lo, down); return its JSON."""
    require_root()
    require_binary("unshare")
    script = f"{setup}\nexec {shlex.quote(sys.executable)} -c {shlex.quote(PROBE + code)}"
    proc = subprocess.run(
        ["unshare", "--net", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


PROBE = """
import asyncio, json, time
from node_agent.config.model import CheckerConfig, CheckerKind
from node_agent.resources.checkers import make_checker

def run(kind, target, timeout_s=1.0):
    began = time.monotonic()
    r = asyncio.run(make_checker(CheckerConfig("c", CheckerKind(kind), target,
                                               timeout_s=timeout_s), None).check())
    return {"ok": r.ok, "detail": r.detail, "took": time.monotonic() - began}
"""


def test_ping_without_reply() -> None:
    require_binary("ping")
    # 10.99.0.0/24 is routed out of lo, where nothing owns 10.99.0.1: the echo goes unanswered.
    out = in_fresh_netns(
        "ip link set lo up && ip route add 10.99.0.0/24 dev lo",
        'print(json.dumps(run("ping", "10.99.0.1", 1.0)))',
    )
    assert not out["ok"]
    assert "no reply" in out["detail"]
    assert 0.9 < out["took"] < 4


def test_interface_down() -> None:
    out = in_fresh_netns(":", 'print(json.dumps(run("interface", "lo")))')  # lo is down here
    assert not out["ok"]
    assert "down" in out["detail"] and "admin down" in out["detail"]
    out = in_fresh_netns("ip link set lo up", 'print(json.dumps(run("interface", "lo")))')
    assert out["ok"], out


def test_interface() -> None:
    lo = probe(CheckerKind.INTERFACE, "lo")
    assert lo.ok, lo
    missing = probe(CheckerKind.INTERFACE, "nonexistent0")
    assert not missing.ok
    assert "no such interface" in missing.detail


def test_command_true_false_timeout() -> None:
    assert probe(CheckerKind.COMMAND, "true").ok
    failed = probe(CheckerKind.COMMAND, "echo database unreachable; exit 2")
    assert not failed.ok
    assert failed.detail == "exit status 2: database unreachable"
    began = time.monotonic()
    slow = probe(CheckerKind.COMMAND, "sleep 30", timeout_s=0.5)
    assert not slow.ok
    assert slow.detail == "timed out after 0.5s"
    assert time.monotonic() - began < 4


def test_command_sees_module_environment() -> None:
    app = AppResource("mod7", start="true", stop="true", log=lambda level, msg: None, node="node2")
    ok = probe(CheckerKind.COMMAND, 'test "$MIRRORPAIR_MODULE/$MIRRORPAIR_NODE" = mod7/node2', app)
    assert ok.ok, ok


def test_process_delegates_to_app_check() -> None:
    log = lambda level, msg: None  # noqa: E731
    alive = AppResource("m", start="true", stop="true", check="exit 0", log=log)
    dead = AppResource("m", start="true", stop="true", check="exit 1", log=log)
    assert probe(CheckerKind.PROCESS, "", alive).ok
    result = probe(CheckerKind.PROCESS, "", dead)
    assert not result.ok
    assert "exit status 1" in result.detail
