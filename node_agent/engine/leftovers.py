"""What a killed predecessor left, and drift: at agent start a module driver stops what
an earlier agent left running here, or takes up the role of the data plane it left
serving (issue 13); later, the VIP audit puts right what this node's interfaces hold."""

from __future__ import annotations

import asyncio
import contextlib

from node_agent.core.states import State
from node_agent.engine.driver_face import DriverFace
from node_agent.resources.common import ResourceError
from protos import dataplane_pb2 as dp


async def clean_start(d: DriverFace, left: State | None = None) -> None:
    """Agent start, before any command: this node serves nothing yet, so nothing of
    the module may be found running here (a SIGKILLed agent leaves its application
    and VIP behind: clients would then reach two nodes) -- unless its predecessor left
    it serving on purpose (``left``: what it served, from handover.py)."""
    d._loop = asyncio.get_running_loop()
    if d.repl is not None:
        await d.repl.open()  # a data plane that cannot start is logged and retried
        if await adopt(d):
            return
    elif left is not None and await adopt_left_running(d, left):
        return
    try:
        if d.vip is not None and await d.vip.is_held():
            await d.vip.release()
            d._app_log("warning", f"virtual IP {d.vip.address} was left on "
                       f"{d.vip.interface} by an earlier run: removed")  # fmt: skip
        if await d.resource.found_running():
            d._app_log("warning", f"the {d.resource.kind} resource was left running "
                       "by an earlier run: stopping it")  # fmt: skip
            result = await d.resource.stop()
            if not result.ok:  # the truth: it runs here; the stop is retried
                d._app_log("error", f"cannot stop it: {result.detail}")
                d.running = True
    except (ResourceError, OSError) as exc:
        d._app_log("error", f"cleaning up after an earlier run: {exc}")
    d.vip_held = d.vip is not None and await vip_present(d)


async def adopt(d: DriverFace) -> bool:
    """The data plane an earlier agent left kept serving (issue 13): take up its role
    with the resource it serves, without stopping anything. False: start clean."""
    assert d.repl is not None
    st = d.repl.adopted
    if st is None or st.role == dp.DataPlaneState.NONE:
        return False
    env = d._env()
    if st.role == dp.DataPlaneState.SECONDARY:
        d.machine.adopt(State.SECOND, env, current=st.secondary_current)
        d.after_step()
        return True
    serving = st.mode != "fenced" and await d.resource.found_running()
    if not serving:  # nothing to take over: unmount, then clean up as after a crash
        d._app_log("warning", "the data plane kept the mounts of a resource that no "
                   "longer runs (or was fenced): stopping it")  # fmt: skip
        with contextlib.suppress(OSError, RuntimeError):
            await d.repl.stop_primary()
        return False
    d.running = True
    d.vip_held = d.vip is not None and await vip_present(d)
    state = State.ALONE if st.mode == "track" else State.PRIM
    d.machine.adopt(state, env, primary_since=st.primary_since)
    if st.hold_token:  # a break the old agent may not have taken in: the gate decides
        d.machine.replication_failed("replication broke while the agent was down",
                                     env, st.hold_token)  # fmt: skip
    d._app_log("info", f"{d.resource.kind} resource found running with the data "
               "plane's mounts: taken over")  # fmt: skip
    d.after_step()
    return True


async def adopt_left_running(d: DriverFace, state: State) -> bool:
    """An application module the previous agent served and left running (SIGUSR2):
    take it up as it is -- the same process, the VIP -- if it still runs."""
    try:
        if not await d.resource.found_running():
            return False
    except (ResourceError, OSError):
        return False
    d.running = True
    d.vip_held = d.vip is not None and await vip_present(d)
    d.machine.adopt(state, d._env(), why="the previous agent left it running (a restart "
                    "of the agent alone)")  # fmt: skip
    d._app_log("info", f"{d.resource.kind} resource taken over from the previous agent, "
               "which left it running")  # fmt: skip
    d.after_step()
    return True


async def vip_present(d: DriverFace) -> bool:
    assert d.vip is not None
    try:
        return await d.vip.is_held()
    except ResourceError:
        return d.vip_held


def vip_audit(d: DriverFace, present: bool) -> None:
    """What this node's interfaces really hold (one netlink dump for every module):
    the status reports it, and a VIP found where the module is not served is removed
    (and one missing where it is served is added again)."""
    if d.vip is None:
        return
    d.vip_held = present
    if d._op is not None and not d._op.done():
        return  # a start or stop is moving it right now
    if present and not d.running:
        d._launch(fix_vip(d, False, "found on {i} where the module is not served"))
    elif not present and d.running:
        d._launch(fix_vip(d, True, "missing from {i} where the module is served"))


async def fix_vip(d: DriverFace, add: bool, why: str) -> None:
    assert d.vip is not None
    d._app_log("warning", f"virtual IP {d.vip.address} "
               f"{why.format(i=d.vip.interface)}: {'adding' if add else 'removing'} "
               "it")  # fmt: skip
    try:
        await (d.vip.acquire() if add else d.vip.release())
        d.vip_held = add
    except ResourceError as exc:
        d._app_log("error", str(exc))
        d.vip_held = await vip_present(d)
