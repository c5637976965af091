"""The data plane's gRPC service: the agent's calls mapped onto one ModuleReplication.

Role changes that block (mounting, waiting for ACKs, pairing) run in worker threads, one
at a time (ModuleReplication serializes them itself); everything else answers at once.
Every reply and every event carries the state right after it, numbered (``seq``) so the
agent keeps the newest. Events reach whichever agent is subscribed; while none is (the
agent is down), log lines are kept for the next one and the rest is not: an agent that
(re)connects adopts the data plane from its state, never from old events.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc

from node_agent import VERSION
from node_agent.protocol import PROTOCOL
from node_agent.replication.module_repl import ModuleReplication, Role
from node_agent.replication.resync.quarantine import quarantine
from protos import dataplane_pb2 as dp
from protos import dataplane_pb2_grpc as dp_grpc

log = logging.getLogger(__name__)
Ctx = grpc.aio.ServicerContext
St = dp.DataPlaneState
KEPT_LOG_LINES = 500
PROGRESS_EVERY_S = 0.5

_ROLES = {
    Role.NONE: dp.DataPlaneState.NONE,
    Role.PRIMARY: dp.DataPlaneState.PRIMARY,
    Role.SECONDARY: dp.DataPlaneState.SECONDARY,
}


class DataPlaneService(dp_grpc.DataPlaneServicer):
    def __init__(
        self, repl: ModuleReplication, spec_digest: str, on_shutdown: Callable[[bool], None]
    ) -> None:
        self.repl = repl
        self._spec_digest = spec_digest
        self._on_shutdown = on_shutdown
        self._started_at = time.time()
        self._seq = 0
        self._event_id = 0
        self._history: tuple[str, ...] = ()
        self._primary_since = 0.0
        self._secondary_current = False
        self._subscribers: set[asyncio.Queue[dp.DataPlaneEvent | None]] = set()
        self._ended = False  # end_events() was called: a stream opened later ends at once
        self._kept_logs: collections.deque[dp.DataPlaneEvent] = collections.deque(
            maxlen=KEPT_LOG_LINES
        )
        self._last_progress: tuple = ()
        self.last_agent_seen = time.monotonic()
        repl.on_degraded = self._degraded
        repl.on_replicating = lambda: self._emit(replicating=dp.Empty())
        repl.on_resync_failed = lambda reason: self._emit(resync_failed=reason)
        repl.on_resync_done = self._resync_done

    # ----- state and events ------------------------------------------------------------
    def state(self) -> St:
        self._seq += 1
        repl = self.repl
        p = repl.progress()
        status = repl.status()
        totals = repl.totals()
        return dp.DataPlaneState(
            role=_ROLES[repl.role], mode=str(repl.primary.mode),
            hold_token=repl.primary.hold_token, history=list(self._history),
            primary_since=self._primary_since if repl.role is Role.PRIMARY else 0.0,
            secondary_current=repl.role is Role.SECONDARY and self._secondary_current,
            mounts=repl.mount_count, pid=os.getpid(), version=VERSION,
            protocol_major=PROTOCOL.major, protocol_minor=PROTOCOL.minor,
            spec_digest=self._spec_digest, resync_active=p.active, resync_done=p.bytes_done,
            resync_total=p.bytes_total, resync_rate=p.rate,
            resync_eta=-1.0 if p.eta is None else p.eta,
            stream_bytes_sent=int(status.get("stream_bytes_sent", 0)),
            phase=str(status.get("phase", "")), seq=self._seq, started_at=self._started_at,
            repl_ops=totals.ops, repl_bytes=totals.bytes,
            ack_latency_bounds_s=totals.bounds_s, ack_latency_counts=totals.counts,
            ack_latency_sum_s=totals.latency_sum_s, held_writes=repl.primary.held_writes,
        )  # fmt: skip

    def log_line(self, level: str, message: str) -> None:
        """ModuleReplication's log function (any thread)."""
        with contextlib.suppress(RuntimeError):  # loop closed: the process is ending
            self._loop.call_soon_threadsafe(self._log_event, level, message, time.time())

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.repl._loop = loop  # its callbacks arrive on this loop

    def _log_event(self, level: str, message: str, when: float) -> None:
        self._event_id += 1
        ev = dp.DataPlaneEvent(id=self._event_id, log=dp.LogLine(level=level, message=message,
                                                                  time=when))  # fmt: skip
        if not self._subscribers:
            self._kept_logs.append(ev)
        for q in self._subscribers:
            q.put_nowait(ev)

    def _emit(self, **kind: object) -> None:
        self._event_id += 1
        ev = dp.DataPlaneEvent(id=self._event_id, state=self.state(), **kind)  # type: ignore[arg-type]
        for q in self._subscribers:
            q.put_nowait(ev)

    def _degraded(self, reason: str, hold: str, requested: bool) -> None:
        self._emit(degraded=dp.Degraded(reason=reason, hold=hold, requested=requested))

    def _resync_done(self, generation: str, history: tuple[str, ...]) -> None:
        self._history = tuple(history)
        self._secondary_current = True
        self._emit(resync_done=dp.ResyncDone(generation=generation, history=list(history)))

    async def progress_loop(self) -> None:
        """Resync progress and the like move without an event: pushed while they move."""
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            p = self.repl.progress()
            key = (p.active, p.bytes_done, str(self.repl.primary.mode))
            if key != self._last_progress and self._subscribers:
                self._last_progress = key
                self._emit()

    # ----- the service -------------------------------------------------------------------
    async def GetState(self, request: dp.Empty, context: Ctx) -> St:
        self.last_agent_seen = time.monotonic()
        return self.state()

    async def Events(
        self, request: dp.EventsRequest, context: Ctx
    ) -> AsyncIterator[dp.DataPlaneEvent]:
        q: asyncio.Queue[dp.DataPlaneEvent | None] = asyncio.Queue()
        if self._ended:
            q.put_nowait(None)
        kept, self._kept_logs = list(self._kept_logs), collections.deque(maxlen=KEPT_LOG_LINES)
        self._subscribers.add(q)
        try:
            yield dp.DataPlaneEvent(id=self._event_id, state=self.state())
            for ev in kept:
                yield ev
            while (ev := await q.get()) is not None:
                yield ev
        finally:
            self._subscribers.discard(q)
            self.last_agent_seen = time.monotonic()

    def end_events(self) -> None:
        """The data plane stops: end every Events stream, so the agent hears it end.
        Left to the server's stop, each would be cancelled -- and grpc logs a cancelled
        stream as an unhandled exception (an ERROR and tracebacks for a normal stop)."""
        self._ended = True
        for q in self._subscribers:
            q.put_nowait(None)

    async def _blocking(self, fn: Callable[..., object], *args: object) -> St:
        self.last_agent_seen = time.monotonic()
        await asyncio.to_thread(fn, *args)
        return self.state()

    async def BecomePrimary(self, request: dp.BecomePrimaryRequest, context: Ctx) -> St:
        self._history = tuple(request.history)
        self._secondary_current = False
        await self._abort_on_error(
            context, self.repl.become_primary, request.generation, self._history, request.bound
        )
        self._primary_since = request.primary_since or time.time()
        return self.state()

    async def _abort_on_error(self, context: Ctx, fn: Callable[..., object], *args: object) -> St:
        try:
            return await self._blocking(fn, *args)
        except (OSError, RuntimeError, ValueError) as e:  # MountError is an OSError
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
            raise  # not reached: abort raises

    async def StopPrimary(self, request: dp.Empty, context: Ctx) -> St:
        state = await self._abort_on_error(context, self.repl.stop_primary)
        self._primary_since = 0.0
        return state

    async def PeerIsSecondary(self, request: dp.PeerIsSecondaryRequest, context: Ctx) -> St:
        latest = request.peer_latest_generation or None
        return await self._abort_on_error(
            context, self.repl.peer_is_secondary, latest, request.transient, request.fullsync
        )

    async def PeerGone(self, request: dp.Empty, context: Ctx) -> St:
        return await self._abort_on_error(context, self.repl.peer_gone)

    async def GenerationChanged(self, request: dp.GenerationRequest, context: Ctx) -> St:
        history = tuple(request.history)
        self.repl.generation_changed(request.generation, history)
        self._history = history if history[-1:] == (request.generation,) else (
            *history, request.generation)  # fmt: skip
        return self.state()

    async def BecomeSecondary(self, request: dp.HistoryRequest, context: Ctx) -> St:
        self._history = tuple(request.history)
        self._secondary_current = False
        try:
            self.repl.become_secondary(self._history)
        except RuntimeError as e:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
        return self.state()

    async def LeaveSecondary(self, request: dp.Empty, context: Ctx) -> St:
        self.repl.leave_secondary()
        self._secondary_current = False
        return self.state()

    async def ResolveHold(self, request: dp.ResolveHoldRequest, context: Ctx) -> St:
        self.repl.resolve_hold(request.hold, request.gate_open)
        return self.state()

    async def Quarantine(self, request: dp.QuarantineRequest, context: Ctx) -> dp.QuarantineReply:
        def keep() -> Path:
            repl = self.repl
            try:
                changes = repl.bitmap.changes() if repl.bitmap.base_generation else None
            except OSError:
                changes = None  # no trustworthy record: keep the whole copy
            return quarantine(repl.copy_root, changes, Path(request.destination_root))

        try:
            dest = await asyncio.to_thread(keep)
        except OSError as e:
            await context.abort(grpc.StatusCode.INTERNAL, f"quarantine failed: {e}")
        return dp.QuarantineReply(destination=str(dest))

    async def Shutdown(self, request: dp.ShutdownRequest, context: Ctx) -> dp.Empty:
        self._on_shutdown(request.unmount)
        return dp.Empty()
