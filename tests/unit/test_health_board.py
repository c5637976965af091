"""What the gRPC health service says (node_agent/api/health_board.py), checked through
grpc's own asyncio health servicer."""

from __future__ import annotations

import asyncio

import pytest
from grpc_health.v1 import health, health_pb2

from node_agent.api.health_board import (
    NOT_SERVING,
    SERVING,
    HealthBoard,
    module_service,
    wanted_health,
)


def test_module_serving_needs_the_engine_serving() -> None:
    mods = [("web", True), ("db", False)]
    assert wanted_health(True, mods) == {"": SERVING, "mirrorpair.module.web": SERVING,
                                         "mirrorpair.module.db": NOT_SERVING}  # fmt: skip
    assert set(wanted_health(False, mods).values()) == {NOT_SERVING}
    assert wanted_health(False, []) == {"": NOT_SERVING}


async def _check(servicer: health.aio.HealthServicer, service: str) -> int:
    req = health_pb2.HealthCheckRequest(service=service)
    return (await servicer.Check(req, None)).status  # type: ignore[union-attr]


def test_board_publishes_changes_and_survives_a_new_server() -> None:
    async def run() -> None:
        board = HealthBoard()
        first = health.aio.HealthServicer()
        await board.attach(first, ["mirrorpair.v1.Agent"])
        assert await _check(first, "") == NOT_SERVING  # not started yet
        assert await _check(first, "mirrorpair.v1.Agent") == SERVING
        await board.publish(wanted_health(True, [("web", True)]))
        assert await _check(first, "") == SERVING
        assert await _check(first, module_service("web")) == SERVING
        await board.publish(wanted_health(True, [("db", False)]))  # web removed
        assert await _check(first, module_service("web")) == NOT_SERVING
        assert await _check(first, module_service("db")) == NOT_SERVING
        second = health.aio.HealthServicer()  # the server restarted (pairing, API move)
        await board.attach(second, ["mirrorpair.v1.Agent"])
        assert await _check(second, "") == SERVING
        assert await _check(second, module_service("web")) == NOT_SERVING

    asyncio.run(run())


def test_an_unknown_module_is_not_found() -> None:
    class Ctx:
        async def abort(self, code: object) -> None:
            raise LookupError(code)

    async def run() -> None:
        board, servicer = HealthBoard(), health.aio.HealthServicer()
        await board.attach(servicer, [])
        req = health_pb2.HealthCheckRequest(service=module_service("nosuch"))
        with pytest.raises(LookupError, match="NOT_FOUND"):
            await servicer.Check(req, Ctx())

    asyncio.run(run())
