"""What monitoring sees of the agent (issue 14, point 4): the gRPC health statuses
(node_agent/api/health_board.py), refreshed from the engine a few times a second, and
the Prometheus endpoint (node_agent/metrics/endpoint.py), started, moved or stopped
with the configuration's ``[metrics] listen``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from node_agent.api.health_board import NOT_SERVING, HealthBoard, wanted_health
from node_agent.metrics.endpoint import MetricsBindError, MetricsEndpoint

if TYPE_CHECKING:
    from node_agent.config.model import ClusterConfig
    from node_agent.engine.node import NodeEngine

log = logging.getLogger(__name__)

HEALTH_PERIOD_S = 0.25  # how soon the health statuses follow a module's state


def engine_health(engine: NodeEngine | None) -> dict[str, int]:
    if engine is None:
        return wanted_health(False, ())
    serving = [(n, d.machine.state.is_primary and d.running) for n, d in engine.modules.items()]
    return wanted_health(engine.serving, serving)


class Observability:
    def __init__(self, engine: Callable[[], NodeEngine | None], note: Callable[[str, str], None]):
        """``engine``: the running engine (None before one runs); ``note(level, text)``:
        the agent's log book."""
        self.health = HealthBoard()
        self._engine, self._note = engine, note
        self._task: asyncio.Task[None] | None = None
        self.metrics: MetricsEndpoint | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._follow(), name="health")

    async def _follow(self) -> None:
        while True:
            try:
                await self.health.publish(engine_health(self._engine()))
            except Exception:  # a bug here must not freeze the statuses silently
                log.exception("cannot update the health statuses")
            await asyncio.sleep(HEALTH_PERIOD_S)

    def configure(self, config: ClusterConfig | None, node_id: str) -> None:
        """(Re)start the metrics endpoint where the configuration says (none if "")."""
        listen = config.metrics.listen if config is not None else ""
        if self.metrics is not None and self.metrics.listen == listen:
            return
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None
        if not listen:
            return
        try:
            self.metrics = MetricsEndpoint(listen, node_id, self._engine,
                                           asyncio.get_running_loop())  # fmt: skip
        except MetricsBindError as e:
            # Monitoring must never keep a node from serving: say it, go on without.
            self._note("ERROR", f"{e}; no metrics are served")
            return
        self._note("INFO", f"metrics served on http://{listen}/metrics")

    async def close(self) -> None:
        """The agent stops: every status NOT_SERVING, the endpoint closed."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.health.publish({s: NOT_SERVING for s in self.health.wanted})
        if self.metrics is not None:
            await asyncio.to_thread(self.metrics.close)
            self.metrics = None
