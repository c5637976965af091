"""The agent's Prometheus endpoint (``[metrics] listen``; docs/metrics.md).

prometheus_client's HTTP server runs in threads of its own with a registry of its own
(never the global default one: two agents in one process each have theirs). On each
scrape, the collector asks the event loop for a snapshot of the engine (one short call
there: the status and a copy of the counters), then, in the scrape's thread, asks each
data plane for its fresh counters. A loop that does not answer in time gets
``mirrorpair_agent_responsive 0`` and nothing else: a scrape never waits on a hung loop
for long, and never touches the engine's objects from another thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from node_agent.dataplane.client import DataPlaneClient, DataPlaneError
from node_agent.metrics.families import families, unresponsive
from node_agent.metrics.snapshot import ModuleExtra, Snapshot

if TYPE_CHECKING:
    from node_agent.engine.node import NodeEngine

log = logging.getLogger(__name__)

LOOP_ANSWER_S = 2.0  # how long a scrape waits for the event loop's snapshot
DATAPLANE_ANSWER_S = 0.5  # and for each data plane (else its last known state)
DATAPLANES_BUDGET_S = 3.0  # for all of them: a scrape stays within Prometheus' 10 s


class MetricsBindError(OSError):
    def __init__(self, address: str, detail: str) -> None:
        self.address = address
        super().__init__(f"cannot serve metrics on metrics.listen = {address!r}: {detail}")


def take_snapshot(engine: NodeEngine) -> tuple[Snapshot, dict[str, DataPlaneClient]]:
    """On the event loop: the status and copies of the counters, and the data planes to
    ask (their fresh state is fetched by the caller, off the loop)."""
    modules = {name: ModuleExtra(counts=d.counts.copy()) for name, d in engine.modules.items()}
    clients = {
        name: d.repl.dp
        for name, d in engine.modules.items()
        if d.repl is not None and d.repl.dp is not None
    }
    snap = Snapshot(
        status=engine.status(), serving=engine.serving, modules=modules,
        rejected_by_reason=dict(engine.liveness.rejected_by_reason),
    )  # fmt: skip
    return snap, clients


def with_dataplanes(snap: Snapshot, clients: dict[str, DataPlaneClient]) -> Snapshot:
    """In the scrape's thread: each data plane's fresh state (its cached one if it does
    not answer in time, or once the scrape's budget for them is spent)."""
    deadline = time.monotonic() + DATAPLANES_BUDGET_S
    for name, client in clients.items():
        left = min(DATAPLANE_ANSWER_S, deadline - time.monotonic())
        try:
            state = client.get_state(timeout=left) if left > 0 else client.state
        except DataPlaneError:
            state = client.state
        extra = snap.modules.get(name) or ModuleExtra()
        snap.modules[name] = ModuleExtra(counts=extra.counts, dataplane=state)
    return snap


class EngineCollector(Collector):
    def __init__(
        self, node_id: str, engine: Callable[[], NodeEngine | None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:  # fmt: skip
        self.node_id, self._engine, self._loop = node_id, engine, loop

    def describe(self) -> Iterable[Metric]:
        return []  # never collect() at registration: that would wait on our own loop

    def collect(self) -> Iterable[Metric]:
        async def take() -> tuple[Snapshot, dict[str, DataPlaneClient]] | None:
            engine = self._engine()
            return None if engine is None else take_snapshot(engine)

        try:
            future = asyncio.run_coroutine_threadsafe(take(), self._loop)
        except RuntimeError:  # the loop is closed: the agent is exiting
            return unresponsive(self.node_id)
        try:
            taken = future.result(LOOP_ANSWER_S)
        except concurrent.futures.TimeoutError:
            future.cancel()
            log.warning("metrics: the event loop did not answer within %g s", LOOP_ANSWER_S)
            return unresponsive(self.node_id)
        if taken is None:
            return []
        return families(with_dataplanes(*taken))


class MetricsEndpoint:
    """``/metrics`` on ``listen`` (host:port) until ``close()``."""

    def __init__(
        self, listen: str, node_id: str, engine: Callable[[], NodeEngine | None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:  # fmt: skip
        self.listen = listen
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(EngineCollector(node_id, engine, loop))
        host, _, port = listen.rpartition(":")
        try:
            self._server, self._thread = start_http_server(
                int(port), host.strip("[]"), registry=self.registry
            )
        except OSError as e:
            raise MetricsBindError(listen, e.strerror or str(e)) from None
        self.port = self._server.server_port  # the real one (port 0: chosen by the OS)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)
