"""The engine's libvirt calls for the console and the CLI (split out of node.py):
the domains a node knows, and the adoption of one into a vm module's directory."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from node_agent.config.model import DEFAULT_LIBVIRT_URI, ClusterConfig
from node_agent.engine.logbook import LogBook
from node_agent.engine.module_driver import ModuleDriver
from protos import mirrorpair_pb2 as pb


async def adopt_vm(node_id: str, logbook: LogBook, request: pb.AdoptVmRequest) -> pb.AdoptVmReply:
    from node_agent.resources import vm_adopt

    uri = request.libvirt_uri or DEFAULT_LIBVIRT_URI
    plan = await asyncio.to_thread(
        vm_adopt.plan_adoption,
        uri,
        request.domain,
        request.directory,
        request.module,
        node_id,
    )
    moves = [f"{src} -> {dst}" for src, dst in plan.moves]
    if not request.dry_run:
        await asyncio.to_thread(vm_adopt.adopt, uri, plan)
        logbook.add(
            "INFO",
            f"domain {plan.domain} adopted into {plan.directory} "
            f"({len(moves)} files moved) and undefined from libvirt",
        )
    return pb.AdoptVmReply(moves=moves, config=plan.config, done=not request.dry_run)


async def list_vms(
    config: ClusterConfig, node_id: str, modules: Mapping[str, ModuleDriver], uri: str = ""
) -> list[pb.VmInfo]:
    from node_agent.resources.vm_inventory import list_vms

    vms = [m for m in config.modules if m.vm is not None]
    uri = uri or (vms[0].vm.uri if vms and vms[0].vm else DEFAULT_LIBVIRT_URI)
    uri = uri.replace("{node}", node_id)
    mine = {}
    for name, d in modules.items():
        if (vm := d.resource.describe().vm) is not None:
            mine[vm.domain] = name
    return await asyncio.to_thread(list_vms, uri, mine)
