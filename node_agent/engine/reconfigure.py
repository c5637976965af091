"""A new configuration version applied to a running engine (issue 12, point 6).

Only what changed moves: a removed module is stopped like ``stop`` and dropped, a module
whose settings changed is stopped and started again with them, an added one is started
like at agent start (autostart); every other module keeps its driver, its resource, its
VIP and its replication stream as they are. The live cluster keys (pulse, timeout: see
node_agent/config/changes.py) are set in place.

Both nodes commit the same version at about the same moment, and two rules keep the
pair from racing itself:

- a module stopped on the primary while the peer is still a ready secondary would be
  taken over there (``stop`` hands over), just before the peer stops it too: so a primary
  waits while the peer still runs the old version with a ready secondary copy; the
  secondary stops at once;
- a module started on both nodes at once would find the other one stopped on each side,
  and each would take it (a split brain): so the preferred node starts it, and the other
  starts it once the peer runs the new version and has started it (a changed module also
  waits while the peer still serves it with the old settings).

Every wait is bounded: a peer that never commits (the console died between the two
commits) gets a module handed over, or a new module started without it, and joins when
it commits too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from typing import TYPE_CHECKING

from node_agent.config.changes import diff
from node_agent.config.model import ClusterConfig
from node_agent.core.states import Readiness, State
from node_agent.replication.module_repl import Role

if TYPE_CHECKING:
    from node_agent.engine.module_driver import ModuleDriver
    from node_agent.engine.node import NodeEngine

POLL_S = 0.05
PEER_WAIT_MIN_S = 10.0  # how long a primary waits for its peer to stop the module first


async def reconfigure(engine: NodeEngine, new: ClusterConfig) -> list[str]:
    old = engine.config
    d = diff(old, new)
    if not d.live:  # prepare refuses these: a caller that did not prepare gets told
        raise ValueError(d.refusal())
    if engine._stopping:
        raise RuntimeError("the agent is stopping")
    why = f"configuration version {new.version}"
    engine.logbook.add("INFO", f"{why}: applying ({'; '.join(d.describe()) or 'no change'})")
    going = [*d.removed, *d.changed]
    peer_wait = max(PEER_WAIT_MIN_S, 3 * old.timeout_s)
    await asyncio.gather(*(_stop(engine, n, new.version, peer_wait) for n in going))
    for name in going:
        await _drop(engine.modules[name])
    engine.config = new
    _set_timing(engine, old, new)
    kept = {n: drv for n, drv in engine.modules.items() if n not in going}
    counts = {n: engine.modules[n].counts for n in d.changed}  # the metrics' counters go on
    fresh = [*d.changed, *d.added]  # new drivers
    # In the configuration's order, as at agent start (the status lists them so).
    engine.modules = {m.name: kept.get(m.name) or engine.make_driver(m) for m in new.modules}
    for name, c in counts.items():
        engine.modules[name].counts = c
    for name in going:
        engine._fingerprints.pop(name, None)
    engine.sender.urgent()  # the peer hears the new version (and which modules) now
    if engine._opened:
        await engine._start_receiver()  # no-op if it runs (it serves every module)
    if engine.started:
        who = f"agent ({why})"
        await asyncio.gather(*(_start(engine, n, new.version, who, peer_wait) for n in fresh))
    engine.sender.urgent()
    engine.wake()
    engine.logbook.add("INFO", f"{why}: applied")
    return d.describe()


def _peer_older(engine: NodeEngine, version: int) -> bool:
    """The peer answers and still runs an older configuration (it has not committed)."""
    hb = engine.liveness.latest(time.monotonic())
    return hb is not None and hb.config_version < version


def _peer_ready_secondary(engine: NodeEngine, name: str, version: int) -> bool:
    p = engine.peer_view(name)
    ready = p is not None and p.state is State.SECOND and p.readiness is Readiness.READY
    return ready and _peer_older(engine, version)


def _stopped(drv: ModuleDriver) -> bool:
    repl = drv.repl
    idle = repl is None or (not repl.busy and repl.role is Role.NONE)
    return drv.machine.state is State.STOP and not drv.running and not drv.vip_held and idle


def _may_start(engine: NodeEngine, name: str, version: int) -> bool:
    """Whether a new or changed module may start here now (see the module's doc)."""
    hb = engine.liveness.latest(time.monotonic())
    if hb is None:
        return True  # the peer is silent: start as at agent start (alone if it stays so)
    p = engine.peer_view(name)
    older = hb.config_version < version
    if older and p is not None and p.state.is_primary:
        return False  # it serves the module with the old settings: it stops it soon
    if engine.modules[name].cfg.preferred == engine.node_id:
        return True
    # The other node waits for the preferred one to have started it: both starting at
    # once would each see the other stopped, and each take it (a split brain).
    return not older and p is not None and p.state is not State.STOP


async def _start(engine: NodeEngine, name: str, version: int, who: str,
                 peer_wait: float) -> None:  # fmt: skip
    if engine.modules[name].cfg.autostart:
        deadline = time.monotonic() + peer_wait
        while not _may_start(engine, name, version) and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
    await engine.start_modules([name], who)


async def _stop(engine: NodeEngine, name: str, version: int, peer_wait: float) -> None:
    drv = engine.modules[name]
    why = f"configuration version {version}"
    if drv.machine.state.is_primary and _peer_ready_secondary(engine, name, version):
        deadline = time.monotonic() + peer_wait
        while _peer_ready_secondary(engine, name, version) and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
        if _peer_ready_secondary(engine, name, version):
            engine.logbook.add("WARNING", f"{why}: the peer still runs the module as a ready "
                               "secondary: stopping here hands it over", name)  # fmt: skip
    if drv.machine.state is not State.STOP:
        drv.machine.command("stop", f"agent ({why})", engine.env(name))
        drv.after_step()
        engine.wake()
    deadline = time.monotonic() + drv.cfg.stop_timeout_s + 30.0
    while not _stopped(drv) and time.monotonic() < deadline:
        if not engine.started:  # no decision loop to step it
            engine.step_all()
        await asyncio.sleep(POLL_S)
    if not _stopped(drv):
        engine.logbook.add("ERROR", f"{why}: the module did not stop in time; dropping it "
                           "anyway", name)  # fmt: skip
    with contextlib.suppress(Exception):
        await drv.shutdown()


async def _drop(drv: ModuleDriver) -> None:
    """End the module's data plane (its successor, if any, starts its own)."""
    if drv.repl is not None:
        with contextlib.suppress(Exception):
            await drv.repl.close(stop_data_plane=True)


def _set_timing(engine: NodeEngine, old: ClusterConfig, new: ClusterConfig) -> None:
    if new.pulse_s != old.pulse_s:
        engine.sender.pulse.pulse_s = engine.peers.pulse_s = new.pulse_s
    if new.timeout_s != old.timeout_s:
        engine.liveness.timeout_s = engine.peers.timeout_s = new.timeout_s
        engine.witness.grace_s = new.timeout_s
        for drv in engine.modules.values():
            m = drv.machine
            m.policy = dataclasses.replace(m.policy, detection_timeout_s=new.timeout_s)
