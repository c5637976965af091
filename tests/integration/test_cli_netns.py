"""The admin CLI from the client namespace against real agents in node namespaces
(issue 10, point 7): a command that asks first never goes ahead without an answer.

`NetnsCluster.cli` runs `mirrorpair` as a script would, stdin /dev/null; ``on_terminal``
runs it on a pseudo-terminal and types the answer, as an admin at a shell would.
"""

from __future__ import annotations

import os
import pty
import select
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.integration.cluster_netns import MODULE, REPO, TIMEOUT_MS, NetnsCluster
from tests.integration.netns import Topology

pytestmark = pytest.mark.root

TIMEOUT_S = TIMEOUT_MS / 1000
QUESTION = b"Continue? [y/N] "


@pytest.fixture
def cluster(topology: Topology, tmp_path: Path) -> Iterator[NetnsCluster]:
    require_binary("arping")
    with NetnsCluster(topology, tmp_path / "cluster") as c:
        c.start()
        c.wait_pair("node1")
        yield c


def on_terminal(c: NetnsCluster, *args: str, answer: str, timeout: float = 30) -> tuple[int, str]:
    """Run the CLI in the client namespace on a pty; type ``answer`` at the question."""
    master, slave = pty.openpty()
    proc = c.topo.popen("client", c.cli_argv(*args), stdin=slave, stdout=slave, stderr=slave,
                        cwd=REPO)  # fmt: skip
    os.close(slave)
    out = b""
    answered = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the CLI exited and closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            if not answered and QUESTION in out:
                os.write(master, answer.encode() + b"\n")
                answered = True
        rc = proc.wait(max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
    return rc, out.decode(errors="replace")


def test_prim_on_a_copy_not_up_to_date_asks_and_needs_yes_without_a_terminal(
    cluster: NetnsCluster,
) -> None:
    c = cluster
    c.kill_agent("node2")  # dies as SECOND: its copy is no longer known to be current
    c.wait_state("node1", "ALONE", "READY", timeout=TIMEOUT_S + 5)
    c.power_off("node1")  # ... and then the primary dies too
    c.start("node2")
    m = c.wait_state("node2", "WAIT", "NOT_READY", timeout=TIMEOUT_S + 10)
    assert not m["uptodate"], m
    # node1 is dead: a short per-agent timeout keeps the CLI from waiting 5 s for it.
    prim = ("--timeout", "2", "prim", MODULE, "--node", "node2")

    r = c.cli(*prim)  # a script: no terminal, no --yes
    assert r.returncode == 14, r.stdout + r.stderr
    assert "NOT up to date" in r.stderr and "no terminal to ask on" in r.stderr, r.stderr
    assert "add --yes" in r.stderr and "accepted" not in r.stdout, r.stdout + r.stderr

    rc, text = on_terminal(c, *prim, answer="n")  # an admin who says no
    assert rc == 14 and "NOT up to date" in text and "cancelled" in text, text

    # Neither reached the agent: it still waits and logged no prim.
    assert c.state("node2") == ("WAIT", "NOT_READY")
    assert not [e for e in c.logs("node2") if e["cause"] == "prim"]

    rc, text = on_terminal(c, *prim, answer="y")
    assert rc == 0 and "node2: accepted" in text, text
    m = c.wait_state("node2", "ALONE", "READY")
    assert m["last_rule"].startswith("prim by ") and "admin" in m["last_rule"], m


def test_forcestop_refused_without_a_terminal_and_yes_before_the_command(
    cluster: NetnsCluster,
) -> None:
    c = cluster
    forcestop = ("forcestop", MODULE, "--node", "node2")
    r = c.cli(*forcestop)
    assert r.returncode == 14, r.stdout + r.stderr
    assert "force-stop web on node2" in r.stderr and "add --yes" in r.stderr, r.stderr
    assert c.state("node2") == ("SECOND", "READY")  # untouched

    r = c.cli("--yes", *forcestop)  # --yes before the command means the same
    assert r.returncode == 0, r.stdout + r.stderr
    assert "node2: accepted" in r.stdout, r.stdout
    c.wait_state("node2", "STOP")
    c.wait_state("node1", "ALONE", "READY")
