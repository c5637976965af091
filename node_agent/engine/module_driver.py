"""The thin I/O around one module's automaton: persist facts, start/stop the
resource and its VIP, run checkers, and feed the results back to the machine."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from node_agent.config.model import CheckerWhen, ClusterConfig, ModuleConfig
from node_agent.core.env import Env
from node_agent.core.facts import load_facts, save_facts
from node_agent.core.machine import ModuleMachine, Policy
from node_agent.core.states import State
from node_agent.core.transition_counts import TransitionCounts
from node_agent.core.transitions import LogRecord
from node_agent.engine import leftovers, module_checks
from node_agent.engine.logbook import LogBook
from node_agent.engine.replication_driver import ReplicationDriver
from node_agent.resources.checkers import CheckerTracker, make_checker
from node_agent.resources.common import ResourceError
from node_agent.resources.resource import make_resource
from node_agent.resources.vip import VirtualIP
from protos import mirrorpair_pb2 as pb

log = logging.getLogger(__name__)

STOP_RETRY_S = 5.0  # a stop that failed is retried, never given up on


class ModuleDriver:
    def __init__(
        self,
        cfg: ModuleConfig,
        node_id: str,
        data_dir: Path,
        logbook: LogBook,
        env_fn: Callable[[], Env],
        on_change: Callable[[], None],
        detection_timeout_s: float,
        config: ClusterConfig | None = None,
        on_record: Callable[[LogRecord], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self._on_record = on_record  # each logged record also goes there (alerts)
        self.node_id = node_id
        self.dir = data_dir / "modules" / cfg.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.facts_path = self.dir / "facts.json"
        self.logbook = logbook
        self.counts = TransitionCounts()  # transitions and failovers, for the metrics
        self._env = env_fn
        self._on_change = on_change
        policy = Policy(
            module=cfg.name,
            node_id=node_id,
            preferred=cfg.preferred,
            maxloop=cfg.maxloop,
            loop_interval_s=cfg.loop_interval_s,
            defaultprim=cfg.defaultprim,
            detection_timeout_s=detection_timeout_s,
            handover_timeout_s=max(30.0, cfg.stop_timeout_s + cfg.start_timeout_s),
        )
        seed = int.from_bytes(os.urandom(4), "big")
        self.machine = ModuleMachine(policy, load_facts(self.facts_path), time.time(), seed)
        self.resource = make_resource(cfg, node=node_id, log=self._app_log, cwd=str(self.dir),
                                      on_event=self._resource_event)  # fmt: skip
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started_at: float | None = None  # the start being timed (last_start_s)
        self.last_start_s = 0.0
        self.last_stop_s = 0.0
        # What a start or stop is doing now and since when (wall clock): the status names
        # each step of a move (a VM's shutdown, its boot) for the console's progress line.
        self._doing, self._doing_since, self._start_wall = "", 0.0, 0.0
        self.vip = (
            VirtualIP(cfg.vip.address, cfg.vip.interface[node_id], self._app_log)
            if cfg.vip
            else None
        )
        self.checkers = [
            (c, make_checker(c, self.resource, log=self._app_log), CheckerTracker(c))
            for c in module_checks.checker_configs(cfg)
        ]
        self.repl = (
            ReplicationDriver(cfg, config, node_id, self.dir, self.machine, env_fn,
                              self._app_log, self.after_step, on_change)
            if cfg.directories and config is not None
            else None
        )  # fmt: skip
        self.running = False  # the truth about the resource on this node
        self.vip_held = False
        self._op: asyncio.Task | None = None
        self._launched = 0  # counts start/stop/restart operations, to date a probe's answer
        self._seen_restart = 0
        self._stop_failed_at = 0.0

    def activity(self) -> tuple[str, float]:
        """(what the driver is doing with the resource, since when); ("", 0.0) if idle.
        "booting": started, until its probes of the application all passed."""
        if self._doing:
            return self._doing, self._doing_since
        if self.running and self._started_at is not None:
            return "booting", self._start_wall
        return "", 0.0

    def _set_doing(self, what: str, since: float = 0.0) -> None:
        self._doing, self._doing_since = what, since if what else 0.0
        self._on_change()  # watchers see each step as it begins

    @property
    def operations(self) -> int:
        """Start/stop/restart operations launched so far (dates an observation)."""
        return self._launched

    def _app_log(self, level: str, message: str) -> None:
        self.logbook.add(level, message, module=self.cfg.name, cause="resource")

    # ----- after every decision ----------------------------------------------------
    def after_step(self) -> None:
        """Persist first (a new generation must be durable before we serve), then act."""
        m = self.machine
        if m.facts_dirty:
            try:
                save_facts(self.facts_path, m.facts)
                m.facts_dirty = False
            except OSError as exc:
                self.logbook.add("ERROR", f"cannot persist module facts: {exc}", self.cfg.name)
                return  # do not act on a decision we could not record
        for rec in m.drain_logs():
            self.counts.record(rec)
            self.logbook.add_record(rec)
            if self._on_record is not None:
                self._on_record(rec)
        if self.repl is not None:
            self.repl.update_gate()
        self._reconcile()

    def _reconcile(self) -> None:
        m = self.machine
        if self._op is not None and not self._op.done():
            return
        if m.restart_token != self._seen_restart:
            self._seen_restart = m.restart_token
            if self.running:
                self._launch(self._restart())
                return
        if m.want_running and not self.running:
            self._launch(self._start())
        elif (
            not m.want_running
            and (self.running or m.resource_up or self.vip_held)
            and time.monotonic() - self._stop_failed_at >= STOP_RETRY_S
        ):
            self._launch(self._stop())
        if self.repl is not None:
            self.repl.reconcile()
        elif m.resync_wanted and m.state is State.SECOND:
            # No replicated directories: nothing to copy.
            m.resync_done(self._env())
            self.after_step()

    def _launch(self, coro) -> None:
        self._launched += 1
        self._op = asyncio.get_running_loop().create_task(coro)
        self._op.add_done_callback(lambda _t: self._on_change())

    async def _start(self) -> None:
        ok, detail = True, ""
        began = time.monotonic()
        self._start_wall = time.time()
        self._set_doing("starting", self._start_wall)
        self.last_start_s = 0.0  # the last boot's time is no longer this one's
        try:
            if self.repl is not None:
                # Mount the replicated directories before the application can use them.
                await self.repl.start_primary()
            if self.vip is not None:
                await self.vip.acquire()
                self.vip_held = True
            # What is timed (last_start_s, "booting", the start window of the checks) is
            # the resource's own start: not the mount, nor the VIP's gratuitous ARP.
            began, self._start_wall = time.monotonic(), time.time()
            result = await self.resource.start()
            ok, detail = result.ok, result.detail
        except (ResourceError, OSError, RuntimeError) as exc:  # MountError is a RuntimeError
            ok, detail = False, str(exc)
        self.running = ok
        for _cfg, _checker, tracker in self.checkers:
            tracker.reset()
        self._started_at = began if ok else None
        if ok and not any(c.runs is CheckerWhen.PRIMARY for c, _k, _t in self.checkers):
            self.last_start_s = time.monotonic() - began  # nothing to wait for
            self._started_at = None
            self.machine.resource_answered(self._env())
        if not ok:
            await self._stop_quietly()
        self._set_doing("")  # "booting" now, while _started_at is set
        self.machine.resource_started(ok, detail, self._env())
        self.after_step()

    async def _stop(self) -> None:
        ok, detail = True, ""
        began = time.monotonic()
        self._started_at = None  # a start being stopped is no longer timed
        self._set_doing("force-stopping" if self.machine.forced else "stopping", time.time())
        try:
            result = await self.resource.stop(force=self.machine.forced)
            ok, detail = result.ok, result.detail
            if self.vip is not None:
                await self.vip.release()
                self.vip_held = False
            if ok and self.repl is not None:
                await self.repl.stop_primary()  # unmount once nothing uses the mount
        except (ResourceError, OSError, RuntimeError) as exc:
            ok, detail = False, str(exc)
        if ok:
            self.running = False
            self.last_stop_s = time.monotonic() - began
            for cfg, _checker, tracker in self.checkers:
                if cfg.runs is CheckerWhen.PRIMARY:
                    tracker.reset()  # about an application that no longer runs here
        else:
            self._stop_failed_at = time.monotonic()
        self._set_doing("")
        self.machine.forced = False
        self.machine.resource_stopped(ok, detail, self._env())
        self.after_step()

    async def _restart(self) -> None:
        self.logbook.add("INFO", "restarting the resource", self.cfg.name, "restart")
        self._started_at = None
        self._set_doing("stopping", time.time())
        result = await self.resource.stop()
        self._set_doing("")
        if not result.ok:
            self.logbook.add(
                "ERROR", f"stop before restart failed: {result.detail}", self.cfg.name, "restart"
            )
        self.running = False
        if self.machine.want_running:
            await self._start()

    async def _stop_quietly(self) -> None:
        """After a failed start, leave nothing half-started (app or VIP)."""
        try:
            await self.resource.stop()
            if self.vip is not None:
                await self.vip.release()
                self.vip_held = False
            if self.repl is not None:
                await self.repl.stop_primary()
        except (ResourceError, OSError, RuntimeError) as exc:
            self.logbook.add("ERROR", f"cleanup after failed start: {exc}", self.cfg.name)

    async def shutdown(self) -> None:
        """Agent exit: stop the resource if it runs here (the peer may take over)."""
        if self._op is not None:
            await asyncio.gather(self._op, return_exceptions=True)
        if self.running or self.vip_held:
            await self._stop()
        if self.repl is not None:
            await self.repl.close(stop_data_plane=True)

    # ----- what a killed predecessor left, and drift (leftovers.py) -----------------
    async def clean_start(self, left: State | None = None) -> None:
        """Agent start, before any command: stop what an earlier run left here, or take
        up the role of the data plane it left serving, or (``left``) what the previous
        agent said it left running."""
        await leftovers.clean_start(self, left)

    def vip_audit(self, present: bool) -> None:
        """What this node's interfaces really hold (one netlink dump for every module)."""
        leftovers.vip_audit(self, present)

    # ----- checkers (module_checks.py) ----------------------------------------------
    async def run_checks_once(self) -> None:
        await module_checks.run_checks_once(self)

    def _resource_event(self) -> None:
        """The resource changed on its own (any thread): probe it now, not at the next
        interval."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(module_checks.probe_now, self)

    def checker_status(self) -> list[pb.CheckerStatus]:
        return module_checks.checker_status(self)
