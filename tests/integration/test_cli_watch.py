"""`mirrorpair log --follow` and `swap/migrate --wait` against two REAL agents on this
machine (tests/integration/agents.py), through the agents' WatchStatus streams."""

from __future__ import annotations

import contextlib
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.agents import LocalCluster


@pytest.fixture
def lc(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path / "cluster") as cluster:
        cluster.wait_settled("web")
        yield cluster


class Follower:
    """`mirrorpair log web --follow` as a real process; its lines collected as they come."""

    def __init__(self, lc: LocalCluster, *args: str) -> None:
        cmd = [sys.executable, "-m", "node_agent.cli.main", *lc.cluster.cli_args(), "log", *args]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)  # fmt: skip
        self.out: list[str] = []
        self.err: list[str] = []
        self._q: queue.Queue[tuple[str, str]] = queue.Queue()
        for name, stream in (("out", self.proc.stdout), ("err", self.proc.stderr)):
            threading.Thread(target=self._pump, args=(name, stream), daemon=True).start()

    def _pump(self, name: str, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self._q.put((name, line.rstrip("\n")))

    def _drain(self, timeout: float) -> None:
        with contextlib.suppress(queue.Empty):
            name, line = self._q.get(timeout=timeout)
            (self.out if name == "out" else self.err).append(line)

    def wait_for(self, what: str, test: object, timeout: float = 20) -> None:
        """Until ``test(out, err)`` is true (``test``: a callable on the two line lists)."""
        deadline = time.monotonic() + timeout
        while not test(self.out, self.err):  # type: ignore[operator]
            assert self.proc.poll() is None or not self._q.empty(), self.text()
            assert time.monotonic() < deadline, f"no {what} in:\n{self.text()}"
            self._drain(0.2)

    def text(self) -> str:
        return "\n".join(self.out) + "\n--- stderr:\n" + "\n".join(self.err)

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        rc = self.proc.wait(20)
        while not self._q.empty():
            self._drain(0)
        return rc


def test_log_follow_prints_new_entries_of_both_nodes_across_an_agent_restart(
    lc: LocalCluster,
) -> None:
    primary, secondary = lc.wait_settled("web")
    f = Follower(lc, "web", "--follow")
    try:
        # The backlog first: the module's start on both nodes.
        f.wait_for("the backlog", lambda out, _: {primary, secondary} <= _nodes(out))
        backlog = len(f.out)
        assert lc.cli("swap", "web")[0] == 0
        # New entries, from both nodes, as they are logged.
        f.wait_for("the swap on both nodes", lambda out, _: {primary, secondary} <= _nodes(
            [line for line in out[backlog:] if "swap" in line or "-> PRIM" in line]))  # fmt: skip
        lc.wait_settled("web")
        lc.kill(primary)  # now the secondary: the follower loses it and keeps trying
        f.wait_for("the loss", lambda _, err: any(f"{primary}: connection lost" in e for e in err))
        mark = len(f.out)
        lc.start(primary)
        back = f"{primary}: connected"
        f.wait_for("the reconnection", lambda _, err: any(back in e for e in err))
        # What the restarted agent logged (fetched or streamed) reaches the follower.
        f.wait_for("the restarted node's entries", lambda out, _: primary in _nodes(out[mark:]))
        lc.wait_settled("web")
    finally:
        rc = f.interrupt()
    assert rc == 0, f.text()  # Ctrl-C is how a follower ends
    assert len(f.out) == len(set(f.out)), f"an entry printed twice:\n{f.text()}"


def _nodes(lines: list[str]) -> set[str]:
    """The node column of formatted log lines ("2024-01-01 10:00:00.000 node1 INFO ...")."""
    return {line.split()[2] for line in lines if len(line.split()) > 2}


def test_log_follow_unknown_module_and_no_agent(lc: LocalCluster) -> None:
    rc, _, err = lc.cli("log", "nosuch", "--follow")
    assert rc == 11 and "unknown module 'nosuch'" in err, err
    for node in ("node1", "node2"):
        lc.kill(node)
    rc, _, err = lc.cli("--timeout", "1", "log", "--follow")
    assert rc == 10 and "connection refused" in err, err


def test_swap_and_migrate_wait_until_the_roles_have_exchanged(lc: LocalCluster) -> None:
    primary, secondary = lc.wait_settled("web")
    rc, out, err = lc.cli("swap", "web", "--wait")
    assert rc == 0, out + err
    # Returned only once done: the states are already the new ones.
    assert (lc.module(secondary, "web").state, lc.module(primary, "web").state) == (4, 5), out
    assert lc.module(secondary, "web").readiness == lc.module(primary, "web").readiness == 3
    assert f"web swapped: {secondary} PRIM ready, {primary} SECOND ready" in out, out
    assert "swap" in out.split("waiting for", 1)[1], out  # the transitions were printed

    rc, out, err = lc.cli("migrate", "web", "--wait-timeout", "60")  # implies --wait
    assert rc == 0, out + err
    assert f"web swapped: {primary} PRIM ready, {secondary} SECOND ready" in out, out


def test_swap_wait_timeout_exits_15_and_the_swap_goes_on(lc: LocalCluster) -> None:
    primary, secondary = lc.wait_settled("web")
    rc, out, err = lc.cli("swap", "web", "--wait-timeout", "0.01")
    assert rc == 15, out + err
    assert out.startswith(f"{primary}: accepted"), out
    assert "web not swapped within 0.01s" in err and "the agents go on" in err, err
    lc.wait_state(secondary, "web", "PRIM", "READY")
