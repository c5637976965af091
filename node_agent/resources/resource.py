"""The one interface the module driver and the checkers use for what a module runs
(DESIGN §6), and the factory that picks its driver by module kind -- like Ganeti's
hypervisor map. A driver only does what it is told and reports; when to start or stop
is the automaton's decision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from node_agent.config.model import ModuleConfig
from node_agent.resources.common import LogFn, ResourceResult  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class VmDetails:
    domain: str
    vcpus: int
    memory_bytes: int
    disks: tuple[tuple[str, str, int], ...]  # (target, image path, size in bytes)


@dataclass(frozen=True)
class ResourceInfo:
    """What a resource says about itself for the status (console cards, CLI)."""

    kind: str
    state: str = ""  # e.g. "running", "shut off", "paused on an I/O error"; "" if unknown
    vm: VmDetails | None = None


class Resource(Protocol):
    kind: str
    # Environment and working directory of the commands run for this module (a command
    # checker's too): MIRRORPAIR_MODULE, MIRRORPAIR_NODE, MIRRORPAIR_VIP.
    env: Mapping[str, str]
    cwd: str | None

    async def start(self) -> ResourceResult:
        """Start it here; ok once it runs."""
        ...

    async def stop(self, force: bool = False) -> ResourceResult:
        """Stop it here (force: at once, no clean shutdown); ok once it no longer runs."""
        ...

    async def check(self) -> ResourceResult:
        """Whether it runs here and is healthy (the process checker asks this)."""
        ...

    async def can_run(self) -> ResourceResult:
        """Whether this node could start it now (asked where it does not run: a node that
        could not must not be offered a swap or a failover)."""
        ...

    async def found_running(self) -> bool:
        """At agent start: whether it runs here although nobody started it in this run
        (a killed agent leaves it). False when it cannot be told."""
        ...

    def describe(self) -> ResourceInfo:
        """What it is, from what is known now (never blocks)."""
        ...


def make_resource(
    cfg: ModuleConfig, *, node: str, log: LogFn, cwd: str, env: Mapping[str, str] | None = None,
    on_event: Callable[[], None] | None = None,
) -> Resource:  # fmt: skip
    """The driver of ``cfg.kind``: ``app`` (commands) or ``vm`` (a libvirt domain).
    ``on_event``: something happened to the resource on its own (a VM crashed): check it
    now rather than at the next interval."""
    factory = _FACTORIES.get(cfg.kind)
    if factory is None:
        raise ValueError(f"module {cfg.name!r}: no resource driver for kind {cfg.kind!r}")
    return factory(cfg, node=node, log=log, cwd=cwd, env=env, on_event=on_event)


def _app(cfg: ModuleConfig, *, on_event: object = None, **kw: object) -> Resource:
    from node_agent.resources.app import AppResource

    return AppResource.from_config(cfg, **kw)  # type: ignore[arg-type]


def _vm(cfg: ModuleConfig, **kw: object) -> Resource:
    from node_agent.resources.vm import VmResource

    return VmResource(cfg, **kw)  # type: ignore[arg-type]


# Imported on use: a kind's driver may need a library the others do not (libvirt).
_FACTORIES: dict[str, Callable[..., Resource]] = {"app": _app, "vm": _vm}

__all__ = ["Resource", "ResourceInfo", "ResourceResult", "make_resource"]
