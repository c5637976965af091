"""The thin I/O around one module's automaton: persist facts, start/stop the
resource and its VIP, run checkers, and feed the results back to the machine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

from node_agent.config.model import (
    CheckerAction,
    CheckerConfig,
    CheckerKind,
    CheckerWhen,
    ClusterConfig,
    ModuleConfig,
)
from node_agent.core.env import Env
from node_agent.core.facts import load_facts, save_facts
from node_agent.core.machine import ModuleMachine, Policy
from node_agent.core.states import Readiness, State
from node_agent.core.transition_counts import TransitionCounts
from node_agent.core.transitions import LogRecord
from node_agent.engine.logbook import LogBook
from node_agent.engine.replication_driver import ReplicationDriver
from node_agent.resources.checkers import CheckerTracker, counts_as_failure, make_checker
from node_agent.resources.common import ResourceError
from node_agent.resources.resource import make_resource
from node_agent.resources.vip import VirtualIP
from protos import dataplane_pb2 as dp
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
            for c in self._checker_configs()
        ]
        self.repl = (
            ReplicationDriver(cfg, config, node_id, self.dir, self.machine, env_fn,
                              self._app_log, self.after_step)
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

    def _checker_configs(self) -> list[CheckerConfig]:
        cfgs = list(self.cfg.checkers)
        has_process = any(c.kind is CheckerKind.PROCESS for c in cfgs)
        if (self.cfg.check or self.cfg.kind == "vm") and not has_process:
            # The module's own check command (a VM: its domain's state) is its process
            # checker.
            cfgs.insert(
                0,
                CheckerConfig(
                    "process",
                    CheckerKind.PROCESS,
                    "",
                    interval_s=5.0,
                    timeout_s=self.cfg.check_timeout_s,
                ),
            )
        if self.cfg.kind == "vm" and not any(c.kind is CheckerKind.HOST for c in cfgs):
            # A secondary whose libvirt could not start the VM waits, saying why, rather
            # than being offered a swap or a failover it would fail.
            cfgs.append(CheckerConfig("libvirt", CheckerKind.HOST, "", interval_s=3.0,
                                      timeout_s=self.cfg.check_timeout_s, failures=2,
                                      action=CheckerAction.WAIT))  # fmt: skip
        return cfgs

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

    # ----- what a killed predecessor left, and drift -------------------------------
    async def clean_start(self) -> None:
        """Agent start, before any command: this node serves nothing yet, so nothing of
        the module may be found running here (a SIGKILLed agent leaves its application
        and VIP behind: clients would then reach two nodes)."""
        self._loop = asyncio.get_running_loop()
        if self.repl is not None:
            await self.repl.open()  # a data plane that cannot start is logged and retried
            if await self._adopt():
                return
        try:
            if self.vip is not None and await self.vip.is_held():
                await self.vip.release()
                self._app_log("warning", f"virtual IP {self.vip.address} was left on "
                              f"{self.vip.interface} by an earlier run: removed")  # fmt: skip
            if await self.resource.found_running():
                self._app_log("warning", f"the {self.resource.kind} resource was left running "
                              "by an earlier run: stopping it")  # fmt: skip
                result = await self.resource.stop()
                if not result.ok:  # the truth: it runs here; the stop is retried
                    self._app_log("error", f"cannot stop it: {result.detail}")
                    self.running = True
        except (ResourceError, OSError) as exc:
            self._app_log("error", f"cleaning up after an earlier run: {exc}")
        self.vip_held = self.vip is not None and await self._vip_present()

    async def _adopt(self) -> bool:
        """The data plane an earlier agent left kept serving (issue 13): take up its role
        with the resource it serves, without stopping anything. False: start clean."""
        assert self.repl is not None
        st = self.repl.adopted
        if st is None or st.role == dp.DataPlaneState.NONE:
            return False
        env = self._env()
        if st.role == dp.DataPlaneState.SECONDARY:
            self.machine.adopt(State.SECOND, env, current=st.secondary_current)
            self.after_step()
            return True
        serving = st.mode != "fenced" and await self.resource.found_running()
        if not serving:  # nothing to take over: unmount, then clean up as after a crash
            self._app_log("warning", "the data plane kept the mounts of a resource that no "
                          "longer runs (or was fenced): stopping it")  # fmt: skip
            with contextlib.suppress(OSError, RuntimeError):
                await self.repl.stop_primary()
            return False
        self.running = True
        self.vip_held = self.vip is not None and await self._vip_present()
        state = State.ALONE if st.mode == "track" else State.PRIM
        self.machine.adopt(state, env, primary_since=st.primary_since)
        if st.hold_token:  # a break the old agent may not have taken in: the gate decides
            self.machine.replication_failed("replication broke while the agent was down",
                                            env, st.hold_token)  # fmt: skip
        self._app_log("info", f"{self.resource.kind} resource found running with the data "
                      "plane's mounts: taken over")  # fmt: skip
        self.after_step()
        return True

    async def _vip_present(self) -> bool:
        assert self.vip is not None
        try:
            return await self.vip.is_held()
        except ResourceError:
            return self.vip_held

    def vip_audit(self, present: bool) -> None:
        """What this node's interfaces really hold (one netlink dump for every module):
        the status reports it, and a VIP found where the module is not served is removed
        (and one missing where it is served is added again)."""
        if self.vip is None:
            return
        self.vip_held = present
        if self._op is not None and not self._op.done():
            return  # a start or stop is moving it right now
        if present and not self.running:
            self._launch(self._fix_vip(False, "found on {i} where the module is not served"))
        elif not present and self.running:
            self._launch(self._fix_vip(True, "missing from {i} where the module is served"))

    async def _fix_vip(self, add: bool, why: str) -> None:
        assert self.vip is not None
        self._app_log("warning", f"virtual IP {self.vip.address} "
                      f"{why.format(i=self.vip.interface)}: {'adding' if add else 'removing'} "
                      "it")  # fmt: skip
        try:
            await (self.vip.acquire() if add else self.vip.release())
            self.vip_held = add
        except ResourceError as exc:
            self._app_log("error", str(exc))
            self.vip_held = await self._vip_present()

    # ----- checkers ----------------------------------------------------------------
    async def run_checks_once(self) -> None:
        for cfg, checker, tracker in self.checkers:
            if not self._check_applies(cfg) or not tracker.due(time.monotonic()):
                continue
            launched = self._launched
            result = await checker.check()
            if self._launched != launched or not self._check_applies(cfg):
                # The resource was started or stopped while the probe ran (a swap, say):
                # its answer is about a world that is gone, so it must not trip an action.
                continue
            now = time.monotonic()
            if result.unknown:
                tracker.wait(now, result.detail)  # neither: asked again later
                continue
            if not result.ok and not counts_as_failure(
                result, cfg.runs is CheckerWhen.PRIMARY, self._started_at,
                self.cfg.start_timeout_s, now,
            ):  # fmt: skip
                tracker.wait(now, f"starting: {result.detail}")  # asked again later
                continue
            verdict = tracker.record(result.ok, now, result.detail)
            self._time_start()
            m = self.machine
            if verdict.trip:
                m.checker_failed(cfg.action.value, f"{cfg.name}: {result.detail}", self._env())
                self.after_step()
            elif verdict.cleared and not any(t.failing for _c, _k, t in self.checkers):
                m.checker_cleared(self._env())
                self.after_step()

    def _time_start(self) -> None:
        """A start is over once every probe of the application passed after it (a VM's
        boot: the guest answers), and its time is shown (issue 11: boot after failover)."""
        began = self._started_at
        if began is None:
            return
        mine = [t for c, _k, t in self.checkers if c.runs is CheckerWhen.PRIMARY]
        if all(t.last_ok and t.last_time is not None and t.last_time >= began for t in mine):
            self.last_start_s = time.monotonic() - began
            self._started_at = None
            self.machine.resource_answered(self._env())
            self._app_log("info", f"{self.resource.kind} up and answering its checks "
                          f"{self.last_start_s:.1f}s after its start")  # fmt: skip
            self._on_change()  # no longer "booting"

    def _resource_event(self) -> None:
        """The resource changed on its own (any thread): probe it now, not at the next
        interval."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._probe_now)

    def _probe_now(self) -> None:
        for cfg, _checker, tracker in self.checkers:
            if cfg.kind is CheckerKind.PROCESS:
                tracker.next_due = -math.inf
        self._on_change()

    def _check_applies(self, cfg: CheckerConfig) -> bool:
        """A probe of the application (``when = "primary"``) only while it runs here; a
        probe of the node's surroundings (``"both"``) while the module is started at all.
        Never during a start or stop."""
        if self._op is not None and not self._op.done():
            return False
        return self._checker_runs_here(cfg)

    def _checker_runs_here(self, cfg: CheckerConfig) -> bool:
        if cfg.runs is CheckerWhen.PRIMARY:
            return self.running
        if cfg.runs is CheckerWhen.STANDBY:
            # Where it does not run, once this copy is complete (or while such a checker
            # holds it waiting): a resynchronizing copy is no takeover candidate anyway.
            m = self.machine
            complete = m.state is State.SECOND and m.readiness is Readiness.READY
            return not self.running and (complete or (m.state is State.WAIT and m.checker_wait))
        return self.machine.state is not State.STOP

    def checker_status(self) -> list[pb.CheckerStatus]:
        return [
            pb.CheckerStatus(
                name=cfg.name,
                kind=cfg.kind.value,
                ok=not tracker.failing,
                detail=tracker.last_detail,
                consecutive_failures=tracker.consecutive_failures,
                action=cfg.action.value,
                when=cfg.runs.value,
                active=self._checker_runs_here(cfg),
            )
            for cfg, _checker, tracker in self.checkers
        ]
