"""One node's agent: heartbeats in and out, the witness, every module's driver,
and the decision loop that steps the automatons. Implements EngineApi."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

from node_agent import VERSION
from node_agent.alerts.dispatcher import AlertDispatcher
from node_agent.api.engine_api import CommandOutcome
from node_agent.config.model import ClusterConfig, ModuleConfig, other_node
from node_agent.core.env import Env, PeerView
from node_agent.core.states import State
from node_agent.core.write_gate import owed_at_stop, owes_promise
from node_agent.dataplane.router import ReplicationRouter
from node_agent.engine import handover, vm_calls
from node_agent.engine.convert import machine_fingerprint
from node_agent.engine.heartbeats import Heartbeats
from node_agent.engine.logbook import LogBook
from node_agent.engine.module_driver import ModuleDriver
from node_agent.engine.replication_port import replication_router
from node_agent.engine.status import node_status
from node_agent.engine.vip_audit import audit_vips
from node_agent.engine.watch import watch_events
from node_agent.heartbeat.liveness import LEAVING_S
from node_agent.heartbeat.witness import WitnessProbe
from node_agent.replication.tracking.peer_doubt import kernel_boot_id
from protos import mirrorpair_pb2 as pb

log = logging.getLogger(__name__)

CHECK_PERIOD_S = 0.5
VIP_AUDIT_S = 1.0  # how often the interfaces are compared with what each module wants
SHUTDOWN_GRACE_S = 60.0
# A stopping secondary waits at most this long for the primary to take its promise (two
# pulses if longer: a lost datagram; never beyond the timeout: meanwhile its heartbeats
# keep the primary from counting it gone).
ECHO_WAIT_S = 2.0

_COMMAND_NAMES = {
    pb.COMMAND_START: "start",
    pb.COMMAND_STOP: "stop",
    pb.COMMAND_RESTART: "restart",
    pb.COMMAND_STOPSTART: "stopstart",
    pb.COMMAND_FORCESTOP: "forcestop",
    pb.COMMAND_SWAP: "swap",
    pb.COMMAND_PRIM: "prim",
    pb.COMMAND_SECOND: "second",
    pb.COMMAND_MIGRATE: "migrate",
}


class NodeEngine:
    def __init__(self, config: ClusterConfig, node_id: str) -> None:
        if node_id not in config.nodes:
            raise ValueError(f"unknown node {node_id!r}; the config has {sorted(config.nodes)}")
        self.config = config
        self.node_id = node_id
        self.peer_id = other_node(node_id)
        self.paths = config.paths_for(node_id)
        data_dir: Path = self.paths.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.logbook = LogBook(node_id, data_dir / "module-log.jsonl")
        self.witness = WitnessProbe(config.witness, grace_s=config.timeout_s)
        self.heartbeats = Heartbeats(
            lambda: self.config, node_id, data_dir, self.logbook, self.witness,
            lambda: self.modules, self.wake,
        )  # fmt: skip
        # The heartbeats' parts, by the names the rest of the agent knows them by.
        hb = self.heartbeats
        self.liveness, self.transport, self.sender = hb.liveness, hb.transport, hb.sender
        self.peers = hb.peers  # the peer's modules
        self.alerts = AlertDispatcher(lambda: self.config, node_id, self.peer_id, self.logbook,
                                      data_dir=data_dir, boot_id=kernel_boot_id())  # fmt: skip
        self.modules: dict[str, ModuleDriver] = {
            m.name: self.make_driver(m) for m in config.modules
        }
        self._wake = asyncio.Event()
        self._changed = asyncio.Condition()
        self._node_fingerprint: tuple = ()
        self._fingerprints: dict[str, tuple] = {}
        self._tasks: list[asyncio.Task] = []
        self._stopping = False
        self.receiver: ReplicationRouter | None = None
        self._opened = False
        self.started = False  # run() has started the modules (reconfigure starts new ones)

    def make_driver(self, mcfg: ModuleConfig) -> ModuleDriver:
        return ModuleDriver(
            mcfg, self.node_id, self.paths.data_dir, self.logbook,
            env_fn=lambda name=mcfg.name: self.env(name), on_change=self.wake,
            detection_timeout_s=self.config.timeout_s, config=self.config,
            on_record=self.alerts.observe,
        )  # fmt: skip

    async def reconfigure(self, new_config: ClusterConfig) -> list[str]:
        """Apply a new configuration version while running (node_agent/engine/reconfigure.py):
        what it did, one line per action."""
        from node_agent.engine.reconfigure import reconfigure

        return await reconfigure(self, new_config)

    # ----- environment -------------------------------------------------------------
    def peer_view(self, module: str) -> PeerView | None:
        return self.heartbeats.peer_view(module)

    def env(self, module: str) -> Env:
        return Env(
            now=time.time(),
            peer=self.peer_view(module),
            witness_configured=self.witness.configured,
            witness_ok=self.witness.reachable,
            witness_answering=self.witness.answering,
        )

    def wake(self) -> None:
        self._wake.set()

    # ----- running -------------------------------------------------------------------
    async def open(self) -> None:
        """Bind the heartbeat sockets and the replication listener: a port already in use
        fails here, before the agent says it is ready (run() calls it if nobody did)."""
        if self._opened:
            return
        await self.transport.start()
        try:
            await self._start_receiver()
        except BaseException:
            self.transport.close()
            raise
        self._opened = True

    async def run(self) -> None:
        """Run until cancelled; on cancellation stop local resources cleanly."""
        await self.open()
        self.logbook.add("INFO", f"agent {self.node_id} started (version {VERSION})")
        await self.start_modules(list(self.modules))
        self.started = True
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self.sender.run(), name="heartbeat-sender"),
            loop.create_task(self.witness.run(self._on_witness), name="witness"),
            loop.create_task(self._check_loop(), name="checkers"),
            loop.create_task(self.alerts.run(), name="alerts"),
        ]
        try:
            await self._decision_loop()
        finally:
            await self._shutdown()

    async def start_modules(self, names: list[str], who: str = "agent (autostart)") -> None:
        """Clean up what an earlier run left, then start those set to autostart."""
        drivers = [self.modules[n] for n in names]
        left = handover.take(self.paths.data_dir, time.time(), kernel_boot_id())
        await asyncio.gather(
            *(d.clean_start(left.state_of(d.cfg.name) if left else None) for d in drivers)
        )
        for d in drivers:
            if d.cfg.autostart and d.machine.state is State.STOP:  # not one adopted running
                d.machine.command("start", who, self.env(d.cfg.name))
                d.after_step()

    async def _start_receiver(self) -> None:
        """The node's replication port (replication_port.py): started with the first
        replicated module, at open() or when a reconfigure adds one."""
        if self.receiver is not None:
            return
        self.receiver = replication_router(self.config, self.node_id, lambda: self.modules)
        if self.receiver is not None:
            await self.receiver.start()

    def _on_witness(self, reachable: bool) -> None:
        self.logbook.add(
            "INFO" if reachable else "WARNING",
            f"witness {'reachable' if reachable else 'unreachable'}",
        )
        self.wake()

    async def _decision_loop(self) -> None:
        was_alive = False
        while True:
            # Peer loss is noticed by time, so step at least a few times per pulse (read
            # each time: a new configuration version may change them).
            period = min(self.config.pulse_s, self.config.timeout_s / 6)
            alive = self.liveness.peer_alive(time.monotonic())
            if alive != was_alive:
                was_alive = alive
                self.logbook.add(
                    "INFO" if alive else "WARNING",
                    f"peer {self.peer_id} {'answers' if alive else 'is silent'}",
                )
            self.step_all()
            self._wake.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # (SIGTERM) that arrives as the event is set, and the agent would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(period):
                    await self._wake.wait()

    def step_all(self) -> None:
        changed = False
        for name, d in self.modules.items():
            d.machine.step(self.env(name))
            d.after_step()
            fp = machine_fingerprint(d.machine) + (d.running, d.vip_held, d.activity())
            if self._fingerprints.get(name) != fp:
                self._fingerprints[name] = fp
                changed = True
        if changed:
            self.sender.urgent()
        # Wake the API watchers only when something they show moved: modules, new log
        # entries, links, peer, witness or a resync's progress (keepalive covers the rest).
        now = time.monotonic()
        node_fp = (
            tuple(d.repl.progress_tuple()[:3] for d in self.modules.values() if d.repl),
            self.logbook.seq,
            self.liveness.peer_alive(now),
            tuple(st.up for st in self.liveness.link_states(now)),
            self.witness.reachable,
        )
        if changed or node_fp != self._node_fingerprint:
            self._node_fingerprint = node_fp
            asyncio.get_running_loop().create_task(self._notify_watchers())

    async def _notify_watchers(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _check_loop(self) -> None:
        next_audit = 0.0
        while True:
            for d in list(self.modules.values()):
                try:
                    await d.run_checks_once()
                except Exception:  # a broken checker must not stop the others
                    log.exception("checker of %s failed", d.cfg.name)
            if time.monotonic() >= next_audit:
                next_audit = time.monotonic() + VIP_AUDIT_S
                await self._audit_vips()
            await asyncio.sleep(CHECK_PERIOD_S)

    async def _audit_vips(self) -> None:
        if await audit_vips(list(self.modules.values())):
            self.wake()

    async def _shutdown(self) -> None:
        """A clean agent stop stops each module like `stop` would: a primary stops its
        resource and says so, so a ready secondary takes over at once."""
        self._stopping = True
        self.alerts.flush_mails()  # sent while the modules stop
        fed = {
            n: d.machine.outdated_ack
            for n, d in self.modules.items()
            if owed_at_stop(d.machine.state, d.machine.readiness, d.repl is not None)
        }
        for name, d in self.modules.items():
            if d.machine.state is not State.STOP:
                d.machine.command("stop", "agent shutdown", self.env(name))
                d.after_step()
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        while time.monotonic() < deadline and any(
            d.machine.state is not State.STOP or d.running for d in self.modules.values()
        ):
            self.step_all()
            await asyncio.sleep(0.05)
        await self._echo_outdates(fed)
        self.sender.send_now()  # the peer hears STOP now, not after the timeout
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for d in self.modules.values():
            with contextlib.suppress(Exception):
                await d.shutdown()
        self.logbook.add("INFO", f"agent {self.node_id} stopped")
        if self.receiver is not None:
            with contextlib.suppress(Exception):
                await self.receiver.close()
        self.transport.close()
        self.logbook.close()

    async def _echo_outdates(self, fed: dict[str, str]) -> None:
        """Stay until the primary took this node's promise that the copies of ``fed``
        (current secondaries when the stop began: their echo then) are outdated: its held
        writes go on at once, not after the heartbeat timeout (core/write_gate.py)."""
        cfg = self.config
        deadline = time.monotonic() + min(cfg.timeout_s, max(ECHO_WAIT_S, 2 * cfg.pulse_s))
        owed = dict(fed)
        while owed and time.monotonic() < deadline:
            self.step_all()  # the machines echo a token as it comes; the sender tells
            for n, before in list(owed.items()):
                d = self.modules.get(n)
                if d is None or not owes_promise(self.peer_view(n), d.machine.outdated_ack,
                                                 before):  # fmt: skip
                    del owed[n]
            if owed:
                await asyncio.sleep(0.02)
        for n in sorted(owed):
            self.logbook.add("WARNING", "stopping before the primary took this node's promise "
                             "that its copy is outdated: its writes may wait for the heartbeat "
                             "timeout", n)  # fmt: skip

    def leave_running(self) -> None:
        """Exit now without stopping any module (SIGUSR2): the data planes go on serving
        the mounts and streams, resources and VIPs stay; the next agent adopts them."""
        self.logbook.add("INFO", f"agent {self.node_id} exits leaving its modules running")
        serving = {n: d.machine.state.name for n, d in self.modules.items()
                   if d.machine.state.is_primary and d.running}  # fmt: skip
        record = handover.LeftRunning(kernel_boot_id(), time.time(), serving)
        with contextlib.suppress(OSError):  # the next agent then stops them: safe, not smooth
            handover.write(self.paths.data_dir, record)
        with contextlib.suppress(Exception):  # the peer waits for the next agent (not a crash)
            self.sender.send_now(leaving_s=LEAVING_S)
        self.logbook.close()
        self.transport.close()

    @property
    def serving(self) -> bool:
        """Runs its modules: started and not stopping (the overall health status)."""
        return self.started and not self._stopping

    # ----- EngineApi -------------------------------------------------------------------
    def status(self) -> pb.NodeStatus:
        return node_status(self.config, self.node_id, self.heartbeats, self.witness, self.modules)

    def watch(self, log_level: str = "") -> AsyncIterator[pb.StatusEvent]:
        return watch_events(self.status, self.logbook, self._changed, lambda: self._stopping,
                            log_level)  # fmt: skip

    async def command(
        self, module: str, command: pb.Command, who: str, fullsync: bool = False
    ) -> CommandOutcome:
        driver = self.modules.get(module)
        if driver is None:
            return CommandOutcome(False, f"unknown module {module!r}")
        name = _COMMAND_NAMES.get(command)
        if name is None:
            return CommandOutcome(False, f"unknown command {command}")
        if self._stopping:  # a start now would leave the module running as the agent exits
            return CommandOutcome(False, f"the agent of {self.node_id} is stopping")
        outcome = driver.machine.command(name, who, self.env(module), fullsync)
        driver.after_step()
        self.wake()
        return CommandOutcome(outcome.accepted, outcome.message)

    def logs(self, module: str, limit: int, min_level: str, text: str) -> list[pb.LogEntry]:
        return self.logbook.query(module, limit, min_level, text)

    def config_text(self) -> tuple[str, int, str]:
        return self.config.source_text, self.config.version, self.config.source_path

    async def adopt_vm(self, request: pb.AdoptVmRequest) -> pb.AdoptVmReply:
        return await vm_calls.adopt_vm(self.node_id, self.logbook, request)

    async def list_vms(self, uri: str = "") -> list[pb.VmInfo]:
        return await vm_calls.list_vms(self.config, self.node_id, self.modules, uri)

    def digest(
        self, module: str, zone_size: int = 0, algorithm: str = ""
    ) -> AsyncIterator[pb.DigestChunk]:
        from node_agent.engine.digest import digest_module  # `mirrorpair verify` (issue 3)

        return digest_module(self.modules.get(module), module, zone_size, algorithm)
