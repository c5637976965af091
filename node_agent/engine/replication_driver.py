"""The engine's side of one module's replication: turns the automaton's state and the
peer's view into ModuleReplication role changes, and its callbacks into automaton inputs.

ModuleReplication's role methods block (mounts, threads, ACKs): they run in worker
threads, one at a time per module, never on the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from node_agent.config.model import ClusterConfig, ModuleConfig, other_node
from node_agent.core.env import Env, PeerView
from node_agent.core.machine import ModuleMachine
from node_agent.core.states import Readiness, State
from node_agent.core.write_gate import Gate, write_gate
from node_agent.replication.module_repl import ModuleReplication, Role
from node_agent.replication.resync.quarantine import quarantine
from node_agent.replication.roles.primary import Mode
from node_agent.replication.stream.wire import Mode as WireMode
from node_agent.replication.tracking.peer_doubt import kernel_boot_id
from protos import mirrorpair_pb2 as pb

RETRY_PAIRING_S = 5.0  # after a failed resync/pairing, try again this much later


class ReplicationDriver:
    def __init__(
        self,
        cfg: ModuleConfig,
        config: ClusterConfig,
        node_id: str,
        module_dir: Path,
        machine: ModuleMachine,
        env_fn: Callable[[], Env],
        log: Callable[[str, str], None],
        after_step: Callable[[], None],
    ) -> None:
        peer = other_node(node_id)
        host, port = config.nodes[peer].replication_address
        self.machine = machine
        self._env = env_fn
        self._after_step = after_step
        self._log = log
        # "{node}" lets two agents share one machine (demo, tests) with distinct mounts.
        dirs = [d.replace("{node}", node_id) for d in cfg.directories]
        self.repl = ModuleReplication(
            cfg.name, dirs, module_dir / "copy", module_dir / "track", node_id, peer, host,
            port, config.paths_for(node_id), log,
            on_degraded=self._degraded, on_replicating=self._replicating,
            on_resync_failed=self._resync_failed, on_resync_done=self._resync_done,
            bandwidth_cap=cfg.resync_mbps * 1e6 if cfg.resync_mbps else None,
            mode=WireMode(cfg.async_mode), kernel=kernel_boot_id(),
            mount_options={"writeback_cache": cfg.write_cache},
        )  # fmt: skip
        self._quarantine_root = module_dir / "quarantine"
        self._task: asyncio.Task | None = None
        self._paired_with: tuple | None = None  # the peer view we last paired for
        self._retry_at = 0.0

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.repl._loop = loop  # callbacks arrive on the event loop

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    # ----- called by the resource sequence (primary) ---------------------------------
    async def start_primary(self) -> None:
        facts = self.machine.facts
        gen = facts.generations[-1] if facts.generations else "initial"
        # PRIM from the start (a swap): the peer's copy is current (or, if silent, may
        # be): nothing may be acknowledged before it has it.
        peer = self._env().peer
        bound = self.machine.state is State.PRIM and (peer is None or peer.uptodate)
        await asyncio.to_thread(self.repl.become_primary, gen, facts.generations or (gen,),
                                bound)  # fmt: skip
        self._paired_with = None

    async def stop_primary(self) -> None:
        await asyncio.to_thread(self.repl.stop_primary)
        self._paired_with = None

    # ----- after every decision --------------------------------------------------------
    def update_gate(self) -> None:
        """Held writes: let the write gate decide (core/write_gate.py). Runs after every
        step, even while the resource is starting or stopping."""
        hold = self.repl.primary.hold_token
        if not hold:
            return
        gate = write_gate(self.machine, self._env(), hold)
        if gate is not Gate.HOLD:
            self.repl.resolve_hold(hold, gate is Gate.OPEN)

    def reconcile(self) -> None:
        if self.busy:
            return
        m, env = self.machine, self._env()
        role = self.repl.role
        if role is Role.PRIMARY:
            gens = m.facts.generations
            if gens:
                self.repl.generation_changed(gens[-1], gens)
            self._reconcile_primary(env.peer)
        elif m.state is State.SECOND and role is Role.NONE and m.quarantine_wanted:
            m.quarantine_wanted = False
            self._run(self._quarantine_then_second, m.facts.generations)
        elif m.state is State.SECOND and role is Role.NONE:
            # Immediate (no primary role to undo): the primary may connect any moment.
            self.repl.become_secondary(m.facts.generations)
        elif m.state is not State.SECOND and role is Role.SECONDARY:
            self.repl.leave_secondary()

    def _quarantine_then_second(self, history: tuple[str, ...]) -> None:
        """Worker thread: keep the split-brain loser's own changes, then accept the resync."""
        try:
            changes = self.repl.bitmap.changes() if self.repl.bitmap.base_generation else None
        except OSError:
            changes = None  # no trustworthy record: keep the whole copy
        dest = quarantine(self.repl.copy_root, changes, self._quarantine_root)
        self._log("warning", f"split brain: this node's own changes are kept in {dest}")
        self.repl.become_secondary(history)

    def _reconcile_primary(self, p: PeerView | None) -> None:
        m = self.machine
        pairable = p is not None and p.state is State.SECOND and m.state.is_primary
        if not pairable:
            if self._paired_with is not None:
                self._paired_with = None
                self._run(self.repl.peer_gone)
            return
        assert p is not None
        if not m.want_running or self.repl.primary.mode in (Mode.HELD, Mode.FENCED):
            return  # stopping: keep replicating what runs, start nothing; held: gate first
        key = (p.generations[-1:], p.readiness is Readiness.READY, p.fullsync)
        if key == self._paired_with or time.monotonic() < self._retry_at:
            return
        self._paired_with = key
        latest = p.generations[-1] if p.generations else None
        transient = p.readiness is not Readiness.READY
        self._run(self.repl.peer_is_secondary, latest, transient, p.fullsync)

    def _run(self, fn: Callable, *args: object) -> None:
        self._task = asyncio.get_running_loop().create_task(asyncio.to_thread(fn, *args))
        self._task.add_done_callback(self._ran)

    def _ran(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._log("error", f"replication: {task.exception()}")
            self._retry_at = time.monotonic() + RETRY_PAIRING_S
            self._paired_with = None
        self._after_step()

    # ----- callbacks from ModuleReplication (on the event loop) -------------------------
    def _degraded(self, reason: str, hold: str, requested: bool) -> None:
        self._paired_with = None
        self._retry_at = 0.0 if requested else time.monotonic() + RETRY_PAIRING_S
        self.machine.replication_failed(reason, self._env(), hold, requested)
        self._after_step()

    def _replicating(self) -> None:
        self._after_step()

    def _resync_failed(self, reason: str) -> None:
        self._log("warning", f"resync failed: {reason}; retrying in {RETRY_PAIRING_S:.0f} s")
        self._paired_with = None
        self._retry_at = time.monotonic() + RETRY_PAIRING_S
        self._after_step()

    def _resync_done(self, generation: str, history: tuple[str, ...]) -> None:
        self.machine.resync_done(self._env())
        self._after_step()

    def progress(self) -> pb.ResyncProgress:
        p = self.repl.progress()
        return pb.ResyncProgress(
            active=p.active,
            bytes_done=p.bytes_done,
            bytes_total=p.bytes_total,
            rate_bytes_per_s=p.rate,
            eta_s=-1.0 if p.eta is None else p.eta,
        )
