"""What the agent's gRPC health service says (grpc.health.v1; docs/metrics.md "Health").

    ""                        SERVING while the engine runs its modules (configured and
                              started, not stopping); NOT_SERVING while the agent starts,
                              stops, or has no configuration yet
    "mirrorpair.v1.Agent",    SERVING whenever the server answers (the calls work)
    "mirrorpair.v1.Pairing"
    "mirrorpair.module.NAME"  SERVING only while this node serves module NAME: primary
                              (ALONE or PRIM) with its resource running, and the engine
                              running; NOT_SERVING otherwise (a removed module stays
                              NOT_SERVING until the agent restarts)

``wanted_health`` decides (pure); ``HealthBoard`` keeps the last decision and pushes it
into each new server's health servicer (the agent restarts its server when pairing or
the API address changes).
"""

from __future__ import annotations

from collections.abc import Iterable

from grpc_health.v1 import health, health_pb2

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
OVERALL = health.OVERALL_HEALTH  # ""
MODULE_PREFIX = "mirrorpair.module."


def module_service(name: str) -> str:
    return MODULE_PREFIX + name


def wanted_health(engine_serving: bool, modules: Iterable[tuple[str, bool]]) -> dict[str, int]:
    """The status of the overall service and of each module's: ``modules`` gives, per
    module, whether this node serves it (primary with its resource running)."""
    out = {OVERALL: SERVING if engine_serving else NOT_SERVING}
    for name, serves in modules:
        out[module_service(name)] = SERVING if engine_serving and serves else NOT_SERVING
    return out


class HealthBoard:
    def __init__(self) -> None:
        self._wanted: dict[str, int] = {OVERALL: NOT_SERVING}
        self._servicer: health.aio.HealthServicer | None = None

    @property
    def wanted(self) -> dict[str, int]:
        return dict(self._wanted)

    async def attach(self, servicer: health.aio.HealthServicer, always: Iterable[str]) -> None:
        """A new server's servicer: ``always`` SERVING, the rest as last published."""
        self._servicer = servicer
        for service in always:
            await servicer.set(service, SERVING)
        for service, status in self._wanted.items():
            await servicer.set(service, status)

    async def publish(self, wanted: dict[str, int]) -> None:
        """Set what changed; a service no longer wanted (module removed) -> NOT_SERVING."""
        merged = {s: NOT_SERVING for s in self._wanted if s not in wanted} | wanted
        changed = {s: st for s, st in merged.items() if self._wanted.get(s) != st}
        self._wanted = merged
        if self._servicer is not None:
            for service, status in changed.items():
                await self._servicer.set(service, status)
