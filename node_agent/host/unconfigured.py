"""The ``EngineApi`` of an agent without a cluster configuration (issue 12).

A paired agent waits for the console's first configuration: it answers GetStatus with
``configured = false``, lists its libvirt's VMs (the wizard offers them as modules), and
has no modules. ``EngineSlot`` lets the servicer follow the switch to a real engine when
a configuration is committed: watchers of the placeholder see their stream end and
reconnect to the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from node_agent.api.engine_api import CommandOutcome, EngineApi, UnknownModule
from node_agent.config.model import DEFAULT_LIBVIRT_URI
from node_agent.engine.node import VERSION
from node_agent.engine.watch import WATCH_KEEPALIVE_S
from node_agent.protocol import PROTOCOL
from protos import mirrorpair_pb2 as pb


class UnconfiguredEngine:
    def __init__(self, node_id: str, cluster: str, api_address: str) -> None:
        self.node_id = node_id
        self.cluster = cluster
        self.api_address = api_address
        self._ended = asyncio.Event()

    def end(self) -> None:
        """Replaced by a real engine: end the watch streams (clients reconnect)."""
        self._ended.set()

    def status(self) -> pb.NodeStatus:
        return pb.NodeStatus(
            cluster_name=self.cluster, node_id=self.node_id, api_address=self.api_address,
            version=VERSION, time=time.time(), configured=False, protocol=str(PROTOCOL),
        )  # fmt: skip

    async def watch(self, log_level: str = "") -> AsyncIterator[pb.StatusEvent]:
        seq = 0
        while not self._ended.is_set():
            seq += 1
            yield pb.StatusEvent(seq=seq, status=self.status())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ended.wait(), WATCH_KEEPALIVE_S)

    async def command(
        self, module: str, command: pb.Command, who: str, fullsync: bool = False
    ) -> CommandOutcome:
        return CommandOutcome(False, "this node has no cluster configuration yet")

    def logs(self, module: str, limit: int, min_level: str, text: str) -> list[pb.LogEntry]:
        return []

    def config_text(self) -> tuple[str, int, str]:
        return "", 0, ""

    async def adopt_vm(self, request: pb.AdoptVmRequest) -> pb.AdoptVmReply:
        from node_agent.resources.common import ResourceError

        raise ResourceError("this node has no cluster configuration yet: set it up first")

    async def list_vms(self, uri: str = "") -> list[pb.VmInfo]:
        from node_agent.resources.vm_inventory import list_vms

        return await asyncio.to_thread(list_vms, uri or DEFAULT_LIBVIRT_URI, {})

    def digest(
        self, module: str, zone_size: int = 0, algorithm: str = ""
    ) -> AsyncIterator[pb.DigestChunk]:
        raise UnknownModule(f"unknown module {module!r}: this node has no modules yet")


class EngineSlot:
    """Delegates to the current engine; the agent host swaps it on the first commit."""

    def __init__(self, engine: EngineApi) -> None:
        self.current = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self.current, name)
