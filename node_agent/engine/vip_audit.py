"""Every second, what this node's interfaces hold is compared with what each module
serves (DESIGN §6: a killed agent leaves its VIP behind; status must report the truth)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from node_agent.resources.common import ResourceError
from node_agent.resources.vip import node_addresses

if TYPE_CHECKING:
    from node_agent.engine.module_driver import ModuleDriver

log = logging.getLogger(__name__)


async def audit_vips(drivers: list[ModuleDriver]) -> bool:
    """One netlink dump for every module with a VIP; each driver records what its
    interface holds and corrects drift. True when a module's held VIP changed."""
    before = {d: d.operations for d in drivers if d.vip is not None}
    if not before:
        return False
    try:
        held = await asyncio.to_thread(node_addresses)
    except ResourceError as exc:
        log.warning("VIP audit: %s", exc)
        return False
    moved = False
    for d, operations in before.items():
        assert d.vip is not None
        if d.operations != operations:
            continue  # a start or stop ran during the dump: it is out of date
        was = d.vip_held
        d.vip_audit((d.vip.interface, d.vip.ip) in held)
        moved |= d.vip_held != was
    return moved
