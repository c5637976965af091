"""Two real `mirrorpair-agent` processes on this machine (no root needed): a demo cluster
(node_agent.demo.build_demo_cluster) in a test's tmp_path.

    with LocalCluster(tmp_path) as lc:
        primary, secondary = lc.wait_settled("web")
        lc.client("node1").status()
        rc, out, err = lc.cli("state", "web", "--node", primary)
        lc.kill(primary)                     # SIGKILL: the server "crashes"
        lc.wait_state(secondary, "web", "ALONE")
        lc.start(primary)                    # back, waits until it answers

Agents log to <tmp_path>/<node>-agent.log; failure messages include their tails.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Sequence
from pathlib import Path

from node_agent.cli.client import AgentClient, AgentClientError
from node_agent.cli.main import main as cli_main
from node_agent.config.model import NODE_IDS
from node_agent.dataplane.supervisor import kill_data_planes
from node_agent.demo import AgentProcess, kill_demo_apps, wait_ready
from node_agent.demo_cluster import DemoCluster, build_demo_cluster
from protos import mirrorpair_pb2 as pb


def state_value(state: int | str) -> int:
    """pb.STATE_PRIM, "PRIM" or "STATE_PRIM" -> the enum value."""
    if isinstance(state, int):
        return state
    name = state.upper()
    return pb.ModuleState.Value(name if name.startswith("STATE_") else f"STATE_{name}")


def readiness_value(readiness: int | str) -> int:
    if isinstance(readiness, int):
        return readiness
    name = readiness.upper().replace(" ", "_")
    return pb.Readiness.Value(name if name.startswith("READINESS_") else f"READINESS_{name}")


class LocalCluster:
    def __init__(
        self,
        root: Path,
        *,
        pulse_ms: int = 100,
        timeout_ms: int = 1000,
        modules: Sequence[str] = ("web",),
        extra_toml: str = "",
        log_level: str = "DEBUG",
        ready_timeout_s: float = 30.0,
    ) -> None:
        self.root = Path(root)
        self._build = dict(
            modules=modules, pulse_ms=pulse_ms, timeout_ms=timeout_ms, extra_toml=extra_toml
        )
        self.log_level = log_level
        self.ready_timeout_s = ready_timeout_s
        self.demo: DemoCluster | None = None
        self.agents: dict[str, AgentProcess] = {}
        self._clients: dict[str, AgentClient] = {}

    # ----- lifecycle ---------------------------------------------------------------
    def __enter__(self) -> LocalCluster:
        self.demo = self.make_demo()
        self.agents = {n: AgentProcess(self.demo, n, self.log_level) for n in NODE_IDS}
        try:
            for agent in self.agents.values():
                agent.start()
            wait_ready(self.demo, self.agents.values(), self.ready_timeout_s)
        except BaseException:
            self.close()
            raise
        return self

    def make_demo(self) -> DemoCluster:
        """The cluster's files (a subclass adds modules or runs agents elsewhere)."""
        return build_demo_cluster(self.root, **self._build)  # type: ignore[arg-type]

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()
        for agent in self.agents.values():  # SIGTERM both first: they stop in parallel
            if agent.alive() and agent.proc is not None:
                agent.proc.terminate()
        for agent in self.agents.values():
            agent.stop(grace_s=10.0)
        if self.demo is not None:
            kill_demo_apps(self.demo)

    @property
    def cluster(self) -> DemoCluster:
        assert self.demo is not None, "use LocalCluster as a context manager"
        return self.demo

    # ----- agents --------------------------------------------------------------------
    def client(self, node: str) -> AgentClient:
        """An AgentClient with the admin certificate (cached per node)."""
        if node not in self._clients:
            self._clients[node] = self.cluster.client(node)
        return self._clients[node]

    def kill(self, node: str) -> None:
        """SIGKILL the agent and its data planes: the server crashes (its demo app follows
        the agent within half a second)."""
        self.agents[node].kill()
        kill_data_planes(self.cluster.data_dirs.get(node, self.cluster.root / node))

    def stop(self, node: str) -> None:
        """SIGTERM: a clean agent stop."""
        self.agents[node].stop()

    def start(self, node: str) -> None:
        """(Re)start the agent and wait until it answers."""
        self.agents[node].start()
        wait_ready(self.cluster, [self.agents[node]], self.ready_timeout_s)

    # ----- observing ---------------------------------------------------------------
    def module(self, node: str, module: str) -> pb.ModuleStatus:
        status = self.client(node).status()
        for m in status.modules:
            if m.name == module:
                return m
        raise KeyError(f"{node} has no module {module!r}")

    def wait_state(
        self,
        node: str,
        module: str,
        state: int | str,
        readiness: int | str | None = None,
        timeout: float = 20.0,
    ) -> pb.ModuleStatus:
        """Poll until ``module`` is in ``state`` (and ``readiness``) on ``node``."""
        want = state_value(state)
        ready = None if readiness is None else readiness_value(readiness)
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            try:
                m = self.module(node, module)
                last = (pb.ModuleState.Name(m.state), pb.Readiness.Name(m.readiness), m.reason)
                if m.state == want and (ready is None or m.readiness == ready):
                    return m
            except AgentClientError as e:
                last = e
            if time.monotonic() > deadline:
                wanted = pb.ModuleState.Name(want) + (
                    f"/{pb.Readiness.Name(ready)}" if ready is not None else ""
                )
                raise AssertionError(
                    f"{node} {module}: wanted {wanted} within {timeout:g}s, last {last}\n"
                    + self.describe()
                )
            time.sleep(0.1)

    def wait_settled(self, module: str = "web", timeout: float = 20.0) -> tuple[str, str]:
        """Until one node is PRIM Ready and the other SECOND Ready; (primary, secondary)."""
        deadline = time.monotonic() + timeout
        while True:
            states: dict[str, tuple[int, int]] = {}
            for node in NODE_IDS:
                with contextlib.suppress(AgentClientError, KeyError):
                    m = self.module(node, module)
                    states[node] = (m.state, m.readiness)
            prim = [n for n, s in states.items() if s == (pb.STATE_PRIM, pb.READINESS_READY)]
            second = [n for n, s in states.items() if s == (pb.STATE_SECOND, pb.READINESS_READY)]
            if len(prim) == 1 and len(second) == 1:
                return prim[0], second[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"{module} did not settle: {states}\n" + self.describe())
            time.sleep(0.1)

    def describe(self) -> str:
        """Both agents' recent log lines, for assertion messages."""
        parts = []
        for node, agent in self.agents.items():
            state = "running" if agent.alive() else f"exited {agent.returncode}"
            parts.append(f"--- {node} agent ({state}), {agent.log_path}:\n{agent.log_tail(25)}")
        return "\n".join(parts)

    # ----- the CLI -------------------------------------------------------------------
    def cli(self, *args: str, admin: bool = True) -> tuple[int, str, str]:
        """Run `mirrorpair [--config .. --cert .. --key ..] ARGS` in-process:
        (exit code, stdout, stderr)."""
        argv = [*self.cluster.cli_args(), *args] if admin else list(args)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = cli_main(argv)
            except SystemExit as e:  # argparse usage errors
                rc = e.code if isinstance(e.code, int) else 1
        return rc, out.getvalue(), err.getvalue()
