"""`mirrorpair demo` (issue 10, point 9): the lines it prints run as pasted; a crashed agent
comes back through `demo restart`; the replicated module shows failover with its data,
the resync of the returning node, the degraded badge, and `verify`. Real processes,
real FUSE mounts (root), the command lines run by bash exactly as printed."""

from __future__ import annotations

import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from node_agent.cli.client import AgentClientError, TlsFiles, connect_cluster
from node_agent.cli.render import message_dict
from node_agent.config.load import load_config
from tests.conftest import require_fuse
from tests.integration.demo_run import MIRRORPAIR, Demo, paste

pytestmark = pytest.mark.root
NO_DISPLAY = {k: v for k, v in os.environ.items()
              if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}  # fmt: skip


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    require_fuse()
    d = Demo(tmp_path / "demo", NO_DISPLAY, "--no-console")
    try:
        d.wait_for("Press Ctrl-C")
        yield d
    finally:
        d.stop()  # and nothing left: folder, processes, mounts


class Agents:
    """Quick looks at the demo's agents (the printed lines are run elsewhere; a poll
    through them would cost an interpreter start each)."""

    def __init__(self, root: Path) -> None:
        tls = TlsFiles(root / "ca.pem", root / "admin.pem", root / "admin.key")
        self.clients = connect_cluster(load_config(root / "cluster.toml"), tls, timeout=2)

    def module(self, node: str, name: str) -> dict[str, Any]:
        """The module's status on ``node`` as `status --json` gives it; {} if unreachable."""
        try:
            status = self.clients[node].status()
        except AgentClientError:
            return {}
        return next((message_dict(m) for m in status.modules if m.name == name), {})


def until(what: str, check: Callable[[], Any], timeout: float = 30, step: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(step)
    return value


def page(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.read().decode()
    except OSError:
        return ""


def segments(text: str) -> tuple[int, str]:
    m = re.search(r"(\d+) segments recorded .* the newest by (node\d)", text)
    return (int(m.group(1)), m.group(2)) if m else (0, "")


def test_printed_lines_run_as_pasted(demo: Demo) -> None:
    status = demo.line(" status")
    assert status.startswith(MIRRORPAIR + " --config ")  # a full path: runs from anywhere
    r = paste(status)
    assert r.returncode == 0 and "Module web" in r.stdout and "Module recorder" in r.stdout, r
    r = paste(demo.line('state web --node node1; echo "exit $?"'))
    assert r.stdout.split()[-2:] in (["exit", "3"], ["exit", "4"]), r  # PRIM or SECOND
    r = paste(demo.line(" swap web --wait"))
    assert r.returncode == 0 and "web swapped: node2 PRIM ready, node1 SECOND ready" in r.stdout
    # The follower runs until Ctrl-C (SIGINT), then exits 0.
    follow = demo.line(" log --follow")
    r = subprocess.run(["timeout", "--preserve-status", "-s", "INT", "4", "bash", "-c", follow],
                       capture_output=True, text=True, timeout=30, cwd="/")  # fmt: skip
    assert r.returncode == 0 and "web: command swap accepted" in r.stdout, r


def test_crash_and_restart_show_failover_resync_degraded_and_verify(demo: Demo) -> None:
    status = demo.line(" status")
    module = Agents(demo.root).module
    url = next(w for line in demo.out if "recorder: http" in line for w in line.split()
               if w.startswith("http://"))  # fmt: skip
    until("the recorder pair", lambda: module("node2", "recorder").get("state") == "PRIM"
          and module("node1", "recorder").get("readiness") == "READY")  # fmt: skip
    before, by = until("recorded segments", lambda: segments(page(url))[0] and segments(page(url)))
    assert by == "node2"  # its preferred node records

    # Crash of node2 (the recorder's primary): node1 takes over with the data.
    r = paste(demo.line(" demo kill node2"))
    assert r.returncode == 0 and "node2 agent (pid " in r.stdout, r
    demo.wait_for("start it again with: " + demo.line(" demo restart node2"))
    taken = until("node1 serving", lambda: "served by node1" in (t := page(url)) and t, 30)
    count, by = until("node1 recording", lambda: (s := segments(page(url)))[1] == "node1" and s)
    assert count > before, taken  # counting on from node2's segments: they came across

    # Its return: a resync of what changed meanwhile, which status shows as it runs.
    before_resync = module("node1", "recorder").get("resync", {})
    r = paste(demo.line(" demo restart node2"))
    assert r.returncode == 0 and "node2 agent started again" in r.stdout, r

    def resync_seen() -> dict[str, Any] | None:
        # Seen running, or already over (a segment or two take milliseconds): a new result.
        r = module("node1", "recorder").get("resync", {})
        return r if r.get("bytes_total", 0) > 0 and (r.get("active") or r != before_resync) \
            else None  # fmt: skip

    seen = until("the resync", resync_seen, 30, 0.05)
    assert seen["bytes_total"] >= 1 << 20, seen  # the zones recorded while node2 was away
    until("node2 resynced", lambda: module("node2", "recorder").get("readiness")
          == "READY" and module("node2", "recorder").get("uptodate"), 60)  # fmt: skip
    verify = demo.line(" verify recorder")
    # The app writes a segment every second: a pass may catch one in flight on one side.
    results = [paste(verify) for _ in range(5)]
    assert any(v.returncode == 0 and "identical" in v.stdout for v in results), results

    # The secondary crashes: the primary marks itself degraded, and goes on alone.
    cli = status.removesuffix(" status")
    assert paste(f"{cli} demo kill node2").returncode == 0
    until("degraded", lambda: module("node1", "recorder").get("degraded"), 15)
    assert "degraded" in paste(status).stdout
    until("node1 alone", lambda: module("node1", "recorder").get("state") == "ALONE")
    r = paste(f"{cli} demo kill node2")  # not running: refused
    assert r.returncode == 13 and "not running" in r.stderr, r
