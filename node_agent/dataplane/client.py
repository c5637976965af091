"""The agent's handle on one module's data plane: calls and the state it last reported.

What the engine reads at every step (role, mode, hold token, progress) comes from the
newest state the data plane sent (each reply and each event carries it, numbered), so
the decision loop never waits on the socket. Role changes are calls that block (mounting,
ACKs): the engine makes them from worker threads, as it did with the in-process
replication. Events arrive in a thread of their own and are handed to the event loop;
when their stream ends without the agent closing it, the data plane is gone: ``on_lost``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import grpc

from node_agent.dataplane.handoff import hand_off
from node_agent.procfs import running
from node_agent.replication.module_repl import Role
from node_agent.replication.roles.primary import Mode
from protos import dataplane_pb2 as dp
from protos import dataplane_pb2_grpc as dp_grpc

log = logging.getLogger(__name__)
TOKEN_HEADER = "x-dataplane-token"
CALL_TIMEOUT_S = 10.0
ROLE_CALL_TIMEOUT_S = 600.0  # a stop waits for the stream's ACKs, a mount for FUSE

_ROLES = {
    dp.DataPlaneState.NONE: Role.NONE,
    dp.DataPlaneState.PRIMARY: Role.PRIMARY,
    dp.DataPlaneState.SECONDARY: Role.SECONDARY,
}


class DataPlaneError(RuntimeError):
    """A call the data plane refused or could not answer (the message says which)."""


class Progress(NamedTuple):
    active: bool
    bytes_done: int
    bytes_total: int
    rate: float
    eta: float | None


class DataPlaneClient:
    def __init__(self, module: str, run_dir: Path, ctl_name: str, fd_name: str, token: str) -> None:
        self.module, self.run_dir = module, run_dir
        self._fd_name, self._token = fd_name, token
        self._channel = grpc.insecure_channel(f"unix-abstract:{ctl_name}")
        self._stub = dp_grpc.DataPlaneStub(self._channel)
        self._meta = ((TOKEN_HEADER, token),)
        self.state = dp.DataPlaneState()
        self._mu = threading.Lock()
        self._sent_generation: tuple[str, tuple[str, ...]] | None = None
        self._closing = False
        self._events: grpc.Future | None = None
        # Set by the owner before listen(): run on the event loop.
        self.on_degraded: Callable[[str, str, bool], None] | None = None
        self.on_replicating: Callable[[], None] | None = None
        self.on_resync_failed: Callable[[str], None] | None = None
        self.on_resync_done: Callable[[str, tuple[str, ...]], None] | None = None
        self.on_log: Callable[[str, str], None] | None = None
        self.on_lost: Callable[[str], None] | None = None
        self.on_state: Callable[[], None] | None = None

    # ----- the cached state ---------------------------------------------------------------
    def _take(self, state: dp.DataPlaneState) -> dp.DataPlaneState:
        with self._mu:
            if state.seq > self.state.seq or state.pid != self.state.pid:
                self.state = state
        return state

    @property
    def role(self) -> Role:
        return _ROLES[self.state.role]

    @property
    def mode(self) -> Mode:
        return Mode(self.state.mode) if self.state.mode else Mode.TRACK

    @property
    def hold_token(self) -> str:
        return self.state.hold_token

    def progress(self) -> Progress:
        s = self.state
        eta = None if s.resync_eta < 0 else s.resync_eta
        return Progress(s.resync_active, s.resync_done, s.resync_total, s.resync_rate, eta)

    # ----- calls --------------------------------------------------------------------------
    def _call(
        self, name: str, request: object, timeout: float = CALL_TIMEOUT_S
    ) -> dp.DataPlaneState:
        try:
            reply = getattr(self._stub, name)(request, timeout=timeout, metadata=self._meta)
        except grpc.RpcError as e:
            raise DataPlaneError(
                f"data plane of {self.module}: {name} failed: {e.details() or e.code().name}"
            ) from None
        return self._take(reply) if isinstance(reply, dp.DataPlaneState) else reply

    def get_state(self, timeout: float = CALL_TIMEOUT_S) -> dp.DataPlaneState:
        return self._call("GetState", dp.Empty(), timeout)

    def become_primary(
        self, generation: str, history: tuple[str, ...], bound: bool, primary_since: float
    ) -> None:
        req = dp.BecomePrimaryRequest(generation=generation, history=list(history), bound=bound,
                                      primary_since=primary_since)  # fmt: skip
        self._call("BecomePrimary", req, ROLE_CALL_TIMEOUT_S)
        self._sent_generation = (generation, tuple(history))

    def stop_primary(self) -> None:
        self._call("StopPrimary", dp.Empty(), ROLE_CALL_TIMEOUT_S)

    def peer_is_secondary(self, latest: str | None, transient: bool, fullsync: bool) -> None:
        req = dp.PeerIsSecondaryRequest(peer_latest_generation=latest or "", transient=transient,
                                        fullsync=fullsync)  # fmt: skip
        self._call("PeerIsSecondary", req, ROLE_CALL_TIMEOUT_S)

    def peer_gone(self) -> None:
        self._call("PeerGone", dp.Empty(), ROLE_CALL_TIMEOUT_S)

    def generation_changed(self, generation: str, history: tuple[str, ...]) -> None:
        key = (generation, tuple(history))
        if key == self._sent_generation:
            return  # called at every step: only a change crosses the socket
        self._call("GenerationChanged", dp.GenerationRequest(generation=generation,
                                                             history=list(history)))  # fmt: skip
        self._sent_generation = key

    def become_secondary(self, history: tuple[str, ...]) -> None:
        self._call("BecomeSecondary", dp.HistoryRequest(history=list(history)))

    def leave_secondary(self) -> None:
        self._call("LeaveSecondary", dp.Empty())

    def resolve_hold(self, hold: str, gate_open: bool) -> None:
        self._call("ResolveHold", dp.ResolveHoldRequest(hold=hold, gate_open=gate_open))

    def quarantine(self, destination_root: Path) -> Path:
        req = dp.QuarantineRequest(destination_root=str(destination_root))
        reply = self._call("Quarantine", req, ROLE_CALL_TIMEOUT_S)
        return Path(reply.destination)  # type: ignore[attr-defined]

    def shutdown(self, unmount: bool = True, wait_s: float = 15.0) -> None:
        """Ask it to exit and wait until it has (its sockets are then free for the next)."""
        self._closing = True
        pid = self.state.pid
        with contextlib.suppress(DataPlaneError):
            self._call("Shutdown", dp.ShutdownRequest(unmount=unmount))
        deadline = time.monotonic() + wait_s
        while running(pid) and time.monotonic() < deadline:
            time.sleep(0.01)

    def hand_off(self, conn: object, addr: tuple) -> None:
        hand_off(self._fd_name, self._token, conn, addr)  # type: ignore[arg-type]

    # ----- events -------------------------------------------------------------------------
    def listen(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start taking events (a thread); callbacks run on ``loop``."""
        thread = threading.Thread(target=self._read_events, args=(loop,),
                                  name=f"dp-events-{self.module}", daemon=True)  # fmt: skip
        thread.start()

    def _read_events(self, loop: asyncio.AbstractEventLoop) -> None:
        why = "its event stream ended"
        try:
            stream = self._stub.Events(dp.EventsRequest(), metadata=self._meta)
            self._events = stream
            for ev in stream:
                if ev.HasField("state"):
                    self._take(ev.state)
                self._post(loop, self._dispatch, ev)
        except grpc.RpcError as e:
            why = e.details() or e.code().name
        if not self._closing:
            self._post(loop, self._lost, why)

    def _post(
        self, loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: object
    ) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
            loop.call_soon_threadsafe(fn, *args)

    def _lost(self, why: str) -> None:
        if self.on_lost is not None and not self._closing:
            self.on_lost(why)

    def _dispatch(self, ev: dp.DataPlaneEvent) -> None:
        kind = ev.WhichOneof("kind")
        if kind == "degraded" and self.on_degraded:
            self.on_degraded(ev.degraded.reason, ev.degraded.hold, ev.degraded.requested)
        elif kind == "replicating" and self.on_replicating:
            self.on_replicating()
        elif kind == "resync_failed" and self.on_resync_failed:
            self.on_resync_failed(ev.resync_failed)
        elif kind == "resync_done" and self.on_resync_done:
            self.on_resync_done(ev.resync_done.generation, tuple(ev.resync_done.history))
        elif kind == "log" and self.on_log:
            self.on_log(ev.log.level, ev.log.message)
        elif kind is None and self.on_state:
            self.on_state()

    def close(self) -> None:
        """Stop listening (the data plane goes on)."""
        self._closing = True
        if self._events is not None:
            self._events.cancel()
        self._channel.close()
