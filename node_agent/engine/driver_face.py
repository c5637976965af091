"""What the parts of a module driver (module_checks.py, leftovers.py) see of it.

They are the driver's own code, kept in files of their own for size: each is a set of
plain functions over the one driver, which it passes in, private state included. This
protocol names that state, so that the parts need not import the driver (no cycle)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from node_agent.config.model import CheckerConfig, ModuleConfig
from node_agent.core.env import Env
from node_agent.core.machine import ModuleMachine
from node_agent.engine.replication_driver import ReplicationDriver
from node_agent.resources.checkers import Checker, CheckerTracker
from node_agent.resources.resource import Resource
from node_agent.resources.vip import VirtualIP


class DriverFace(Protocol):
    cfg: ModuleConfig
    machine: ModuleMachine
    resource: Resource
    vip: VirtualIP | None
    repl: ReplicationDriver | None
    checkers: list[tuple[CheckerConfig, Checker, CheckerTracker]]
    running: bool  # the truth about the resource on this node
    vip_held: bool
    last_start_s: float
    _env: Callable[[], Env]
    _on_change: Callable[[], None]
    _loop: asyncio.AbstractEventLoop | None
    _op: asyncio.Task | None
    _launched: int
    _started_at: float | None

    def after_step(self) -> None: ...

    def _app_log(self, level: str, message: str) -> None: ...

    def _launch(self, coro: Coroutine[Any, Any, None]) -> None: ...
