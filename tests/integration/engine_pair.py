"""Two real NodeEngines in one event loop on loopback addresses (real UDP heartbeats,
real app processes), for fast engine tests without namespaces or gRPC."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

from node_agent.config.load import parse_config
from node_agent.config.model import ClusterConfig
from node_agent.dataplane.supervisor import read_pid
from node_agent.engine.node import NodeEngine
from protos import mirrorpair_pb2 as pb

APP = """
[[module]]
name = "web"
kind = "app"
maxloop = {maxloop}
loop_interval_s = 60
start = "sleep 1000 > /dev/null 2>&1 & echo $! > pid"
stop = "kill $(cat pid) 2>/dev/null; rm -f pid"
check = "{check}"
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ALIVE = "kill -0 $(cat pid)"


def cluster_config(
    root: Path, maxloop: int = 2, timeout_ms: int = 1000, check: str = ALIVE
) -> ClusterConfig:
    p1, p2 = free_port(), free_port()
    text = f"""
[cluster]
name = "enginetest"
secret = "engine-test-secret-0123456789"
pulse_ms = 100
timeout_ms = {timeout_ms}
data_dir = "{root}/{{node}}"
[tls]
ca = "{root}/ca.pem"
cert = "{root}/{{node}}.pem"
key = "{root}/{{node}}.key"
[nodes.node1]
api = "127.0.0.1:1"
[nodes.node2]
api = "127.0.0.2:1"
[[heartbeat]]
name = "lan"
node1 = "127.0.0.1"
node2 = "127.0.0.2"
port = {p1}
[[heartbeat]]
name = "direct"
node1 = "127.0.1.1"
node2 = "127.0.1.2"
port = {p2}
""" + APP.format(maxloop=maxloop, check=check)
    return parse_config(text, "engine-test")


def state_of(engine: NodeEngine, module: str = "web") -> tuple[str, str]:
    st = engine.status().modules[0]
    assert st.name == module
    return (pb.ModuleState.Name(st.state)[6:], pb.Readiness.Name(st.readiness)[10:])


class EnginePair:
    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.engines: dict[str, NodeEngine] = {}
        self.tasks: dict[str, asyncio.Task] = {}

    def start(self, node: str) -> NodeEngine:
        engine = NodeEngine(self.config, node)
        self.engines[node] = engine
        self.tasks[node] = asyncio.get_running_loop().create_task(engine.run())
        return engine

    async def stop(self, node: str) -> None:
        """A clean agent stop (SIGTERM)."""
        task = self.tasks.pop(node)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def crash(self, node: str) -> None:
        """Like SIGKILL: the agent vanishes without a word; its app is killed too."""
        engine = self.engines[node]
        engine._shutdown = _silent_shutdown(engine)  # type: ignore[method-assign]
        await self.stop(node)

    async def wait(self, cond: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                states = {n: state_of(e) for n, e in self.engines.items()}
                raise AssertionError(f"timed out waiting for {what}; states: {states}")
            await asyncio.sleep(0.05)

    async def wait_roles(
        self, primary: str, secondary: str, what: str, timeout: float = 15.0
    ) -> None:
        """Until ``primary`` is PRIM/READY and ``secondary`` SECOND/READY (as started now)."""

        def paired() -> bool:
            return state_of(self.engines[primary]) == ("PRIM", "READY") and state_of(
                self.engines[secondary]
            ) == ("SECOND", "READY")

        await self.wait(paired, what, timeout)

    async def close(self) -> None:
        for node in list(self.tasks):
            await self.stop(node)


def kill_data_plane(run_dir) -> None:  # type: ignore[no-untyped-def]
    pid = read_pid(run_dir)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _silent_shutdown(engine: NodeEngine):
    async def shutdown() -> None:
        for t in engine._tasks:
            t.cancel()
        await asyncio.gather(*engine._tasks, return_exceptions=True)
        for d in engine.modules.values():
            with contextlib.suppress(Exception):
                await d.resource.stop()
            if d.repl is not None:  # the whole node goes: its data planes too
                kill_data_plane(d.repl.run_dir)
        engine.transport.close()
        engine.logbook.close()

    return shutdown
