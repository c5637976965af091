"""The engine's side of one module's replication: turns the automaton's state and the
peer's view into role changes of the module's data plane (a process of its own:
node_agent/dataplane/), and its events into automaton inputs.

Role changes block (mounts, threads, ACKs): they run in worker threads, one at a time
per module, never on the event loop. What the loop reads (role, mode, hold) is the data
plane's last reported state.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from node_agent.config.model import ClusterConfig, ModuleConfig, other_node
from node_agent.core.env import Env, PeerView
from node_agent.core.machine import ModuleMachine
from node_agent.core.states import Readiness, State
from node_agent.core.write_gate import Gate, write_gate
from node_agent.dataplane.client import DataPlaneClient, DataPlaneError, Progress
from node_agent.dataplane.spec import DataPlaneSpec
from node_agent.dataplane.supervisor import connect
from node_agent.replication.fuse.mount import clear_stale_mounts
from node_agent.replication.module_repl import Role
from node_agent.replication.roles.primary import Mode
from node_agent.replication.tracking.peer_doubt import kernel_boot_id
from protos import dataplane_pb2 as dp
from protos import mirrorpair_pb2 as pb

RETRY_PAIRING_S = 5.0  # after a failed resync/pairing, try again this much later
RESPAWN_RETRY_S = 5.0  # a data plane that cannot be started again is retried this often


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
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        peer = other_node(node_id)
        host, port = config.nodes[peer].replication_address
        self.machine = machine
        self._env = env_fn
        self._after_step = after_step
        self._wake = wake  # the node's decision loop: it steps, the heartbeat tells the peer
        self._log = log
        paths = config.paths_for(node_id)
        # "{node}" lets two agents share one machine (demo, tests) with distinct mounts.
        self.directories = [d.replace("{node}", node_id) for d in cfg.directories]
        self.spec = DataPlaneSpec(
            module=cfg.name, directories=tuple(self.directories),
            copy_root=str(module_dir / "copy"), track_root=str(module_dir / "track"),
            node_id=node_id, peer_id=peer, peer_host=host, peer_port=port,
            ca=str(paths.ca), cert=str(paths.cert), key=str(paths.key), mode=cfg.async_mode,
            bandwidth_cap=cfg.resync_mbps * 1e6 if cfg.resync_mbps else None,
            write_cache=cfg.write_cache, kernel=kernel_boot_id(),
        )  # fmt: skip
        self.run_dir = module_dir / "dataplane"
        self.dp: DataPlaneClient | None = None
        self.adopted: dp.DataPlaneState | None = None  # what the data plane held at open()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._quarantine_root = module_dir / "quarantine"
        self._task: asyncio.Task | None = None
        self._respawning: asyncio.Task | None = None  # held: the loop keeps weak references
        self._paired_with: tuple | None = None  # the peer view we last paired for
        self._retry_at = 0.0
        self._closed = False

    async def open(self) -> None:
        """Take over the data plane an earlier agent left running, or start one."""
        if self.dp is not None:
            return
        self._loop = asyncio.get_running_loop()
        try:
            client, state, adopted = await asyncio.to_thread(connect, self.spec, self.run_dir)
        except (OSError, RuntimeError) as e:  # the module cannot serve here until it runs
            self._log("error", f"data plane did not start: {e}")
            self._start_respawn()
            return
        self._use(client)
        if adopted:
            self.adopted = state
            self._log("info", f"data plane (pid {state.pid}, version {state.version}) taken "
                      f"over: {_describe(state)}")  # fmt: skip

    def _use(self, client: DataPlaneClient) -> None:
        client.on_degraded, client.on_replicating = self._degraded, self._replicating
        client.on_resync_failed, client.on_resync_done = self._resync_failed, self._resync_done
        client.on_log, client.on_lost = self._log, self._lost
        client.on_state = self._after_step
        self.dp = client
        assert self._loop is not None
        client.listen(self._loop)

    def _lost(self, why: str) -> None:
        """The data plane died (its event stream broke): a failure of this module only."""
        if self._closed:
            return
        self.dp = None
        self._paired_with = None
        self.machine.data_plane_lost(why, self._env())
        self._after_step()
        self._start_respawn()

    def _start_respawn(self) -> None:
        if self._respawning is None or self._respawning.done():
            self._respawning = asyncio.get_running_loop().create_task(self._respawn())

    async def _respawn(self) -> None:
        while not self._closed and self.dp is None:
            try:
                await asyncio.to_thread(self._clear_mounts)
                client, _state, _adopted = await asyncio.to_thread(connect, self.spec, self.run_dir)
            except (OSError, RuntimeError) as e:
                self._log("error", f"data plane could not be started again: {e}; retrying "
                          f"in {RESPAWN_RETRY_S:g} s")  # fmt: skip
                await asyncio.sleep(RESPAWN_RETRY_S)
                continue
            if self._closed:
                client.shutdown()
                client.close()
                return
            self._use(client)
            self._log("info", f"data plane started again (pid {client.state.pid})")
            self.machine.data_plane_back(self._env())
            self._after_step()

    def _clear_mounts(self) -> None:
        for d in self.directories:
            clear_stale_mounts(d)  # the dead data plane's mounts answer nothing

    async def close(self, stop_data_plane: bool) -> None:
        """Agent exit or module removed: ``stop_data_plane`` ends it (once it holds no
        role: a clean stop stopped the module first); else it keeps serving."""
        self._closed = True
        client, self.dp = self.dp, None
        if client is None:
            return
        if stop_data_plane and client.role is Role.NONE:
            await asyncio.to_thread(client.shutdown)
        client.close()

    @property
    def role(self) -> Role:
        return self.dp.role if self.dp is not None else Role.NONE

    @property
    def mode(self) -> Mode:
        return self.dp.mode if self.dp is not None else Mode.TRACK

    def _client(self) -> DataPlaneClient:
        if self.dp is None:
            raise DataPlaneError(f"the data plane of {self.spec.module} is not running")
        return self.dp

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
        client = self._client()
        await asyncio.to_thread(client.become_primary, gen, facts.generations or (gen,), bound,
                                self.machine.primary_since)  # fmt: skip
        self._paired_with = None

    async def stop_primary(self) -> None:
        if self.dp is None:
            return  # a dead data plane holds no mount any more
        await asyncio.to_thread(self.dp.stop_primary)
        self._paired_with = None

    # ----- after every decision --------------------------------------------------------
    def update_gate(self) -> None:
        """Held writes: let the write gate decide (core/write_gate.py). Runs after every
        step, even while the resource is starting or stopping."""
        if self.dp is None or not self.dp.hold_token:
            return
        hold = self.dp.hold_token
        gate = write_gate(self.machine, self._env(), hold)
        if gate is not Gate.HOLD:
            with contextlib.suppress(DataPlaneError):  # it died: _lost takes it from there
                self.dp.resolve_hold(hold, gate is Gate.OPEN)

    def reconcile(self) -> None:
        if self.busy or self.dp is None:
            return
        try:
            self._reconcile(self.dp)
        except DataPlaneError as e:  # it died meanwhile: _lost takes it from there
            self._log("warning", str(e))

    def _reconcile(self, client: DataPlaneClient) -> None:
        m, env = self.machine, self._env()
        role = client.role
        if role is Role.PRIMARY:
            gens = m.facts.generations
            if gens:
                client.generation_changed(gens[-1], gens)
            self._reconcile_primary(env.peer)
        elif m.state is State.SECOND and role is Role.NONE and m.quarantine_wanted:
            m.quarantine_wanted = False
            self._run(self._quarantine_then_second, m.facts.generations)
        elif m.state is State.SECOND and role is Role.NONE:
            # Immediate (no primary role to undo): the primary may connect any moment.
            client.become_secondary(m.facts.generations)
        elif m.state is not State.SECOND and role is Role.SECONDARY:
            client.leave_secondary()

    def _quarantine_then_second(self, history: tuple[str, ...]) -> None:
        """Worker thread: keep the split-brain loser's own changes, then accept the resync."""
        client = self._client()
        dest = client.quarantine(self._quarantine_root)
        self._log("warning", f"split brain: this node's own changes are kept in {dest}")
        client.become_secondary(history)

    def _reconcile_primary(self, p: PeerView | None) -> None:
        m = self.machine
        pairable = p is not None and p.state is State.SECOND and m.state.is_primary
        if not pairable:
            if self._paired_with is not None:
                self._paired_with = None
                self._run(self._client().peer_gone)
            return
        assert p is not None
        if not m.want_running or self.mode in (Mode.HELD, Mode.FENCED):
            return  # stopping: keep replicating what runs, start nothing; held: gate first
        key = (p.generations[-1:], p.readiness is Readiness.READY, p.fullsync)
        if key == self._paired_with or time.monotonic() < self._retry_at:
            return
        self._paired_with = key
        latest = p.generations[-1] if p.generations else None
        transient = p.readiness is not Readiness.READY
        self._run(self._client().peer_is_secondary, latest, transient, p.fullsync)

    def _run(self, fn: Callable, *args: object) -> None:
        self._task = asyncio.get_running_loop().create_task(asyncio.to_thread(fn, *args))
        self._task.add_done_callback(self._ran)

    def _ran(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._log("error", f"replication: {task.exception()}")
            self._retry_at = time.monotonic() + RETRY_PAIRING_S
            self._paired_with = None
        self._after_step()

    # ----- events from the data plane (on the event loop) ------------------------------
    def _degraded(self, reason: str, hold: str, requested: bool) -> None:
        self._paired_with = None
        self._retry_at = 0.0 if requested else time.monotonic() + RETRY_PAIRING_S
        self.machine.replication_failed(reason, self._env(), hold, requested)
        self._after_step()
        # Changed outside the decision loop: the peer must hear the outdate token now, not
        # a pulse later -- the held writes wait for its echo (measured: 0.5 s more).
        self._wake()

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
        self._wake()  # the primary counts a ready secondary from its next heartbeat

    def progress_tuple(self) -> Progress:
        return self.dp.progress() if self.dp is not None else Progress(False, 0, 0, 0.0, None)

    def progress(self) -> pb.ResyncProgress:
        p = self.progress_tuple()
        return pb.ResyncProgress(
            active=p.active,
            bytes_done=p.bytes_done,
            bytes_total=p.bytes_total,
            rate_bytes_per_s=p.rate,
            eta_s=-1.0 if p.eta is None else p.eta,
        )


def _describe(state: dp.DataPlaneState) -> str:
    role = dp.DataPlaneState.Role.Name(state.role).lower()
    if state.role == dp.DataPlaneState.PRIMARY:
        return f"primary, {state.mounts} mounts, {state.mode}"
    if state.role == dp.DataPlaneState.SECONDARY:
        return "secondary, " + ("copy current" if state.secondary_current else "resynchronizing")
    return role
