"""One agent, watched continuously: WatchStatus (with logs) on a grpc.aio channel,
re-dialled with backoff whenever it fails. Everything runs on the asyncio (qasync) loop
and every wait has a timeout, so an address that hangs never blocks anything."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc

from console.client.backoff import Backoff
from console.client.events import (
    ClientEvent,
    CommandResult,
    LogEntries,
    NodeSnapshot,
    NodeUnreachable,
)
from protos import mirrorpair_pb2 as pb
from protos import mirrorpair_pb2_grpc as pb_grpc
from protos.security.credentials import TlsError, aio_secure_channel

log = logging.getLogger(__name__)

EventSink = Callable[[ClientEvent], None]
CredentialsFactory = Callable[[], Awaitable[grpc.ChannelCredentials]]

# A fresh channel per attempt (we re-dial ourselves, with our backoff), sharing no
# subchannel with the one just given up on. grpc's reconnect options are left alone:
# its minimum connect timeout (20 s) comes from "min_reconnect_backoff", and shortening
# it would abort a slow handshake before our own, explained, deadline.
_CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]


@dataclass(frozen=True)
class Timeouts:
    connect_s: float = 5.0  # TCP + TLS handshake
    rpc_s: float = 5.0  # GetStatus, GetLogs, the first status event
    command_s: float = 30.0
    idle_s: float = 5.0  # no event for this long: probe with GetStatus
    probe_s: float = 3.0
    keepalive_s: float = 2.0  # asked of the agent (WatchRequest.keepalive_s)


class StreamEnded(Exception):
    """The agent closed the status stream (it is shutting down)."""


def describe_error(error: BaseException, timeouts: Timeouts) -> str:
    """A reason an operator can act on, for any failure of a connection or call."""
    if isinstance(error, TimeoutError):
        return (
            f"no answer within {timeouts.connect_s:g}s: the connection or TLS handshake "
            "hangs (agent frozen, firewall, wrong port?)"
        )
    if isinstance(error, TlsError | StreamEnded):
        return str(error)
    if isinstance(error, grpc.aio.AioRpcError):
        code, details = error.code(), error.details() or ""
        low = details.lower()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return "no answer before the timeout (agent hung, or the traffic is dropped)"
        if "connection refused" in low:
            return "connection refused (is mirrorpair-agent running there?)"
        if "handshake read failed" in low:
            return (
                f"the TLS handshake did not complete: the agent closed the connection "
                f"(wrong port? it refuses our certificate?) [{details}]"
            )
        if "certificate" in low or "handshake" in low or "ssl" in low:
            return f"TLS handshake failed: check the CA and certificates [{details}]"
        if "socket closed" in low or "connection reset" in low:
            return f"connection lost (agent stopped, or it refuses our certificate) [{details}]"
        return f"{code.name.lower()}: {details}" if code is not None else details
    return f"{type(error).__name__}: {error}"


class NodeClient:
    def __init__(
        self,
        cluster: str,
        node_id: str,
        address: str,
        server_name: str,
        credentials: CredentialsFactory,
        sink: EventSink,
        timeouts: Timeouts | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.cluster, self.node_id, self.address = cluster, node_id, address
        self.server_name = server_name
        self._credentials = credentials
        self._sink = sink
        self.timeouts = timeouts or Timeouts()
        self._backoff = backoff or Backoff()
        self._task: asyncio.Task[None] | None = None
        self._stub: pb_grpc.AgentStub | None = None
        self._last_rx = 0.0
        self.last_error = "not connected yet"

    @property
    def connected(self) -> bool:
        return self._stub is not None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ----- watching ------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            try:
                await self._session()
                error: BaseException = StreamEnded("the agent closed the status stream")
            except asyncio.CancelledError:
                raise
            except Exception as e:  # every failure means: show ERROR, retry later
                error = e
            self.last_error = describe_error(error, self.timeouts)
            if not isinstance(error, grpc.aio.AioRpcError | TimeoutError | TlsError | StreamEnded):
                log.warning("%s/%s: %s", self.cluster, self.node_id, self.last_error)
            self._emit(NodeUnreachable(self.cluster, self.node_id, self.last_error, time.time()))
            await asyncio.sleep(self._backoff.next_delay())

    async def _session(self) -> None:
        credentials = await self._credentials()
        channel = aio_secure_channel(self.address, credentials, self.server_name, _CHANNEL_OPTIONS)
        try:
            stub = pb_grpc.AgentStub(channel)
            # A first unary call, not channel_ready(): it fails fast with the reason
            # (refused, TLS) and only a hanging connection reaches the deadline.
            try:
                status = await stub.GetStatus(
                    pb.GetStatusRequest(), timeout=self.timeouts.connect_s
                )
            except grpc.aio.AioRpcError as e:
                if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise TimeoutError from None
                raise
            self._stub = stub
            self._backoff.reset()
            self._on_status(status)
            request = pb.WatchRequest(log_level="DEBUG", keepalive_s=self.timeouts.keepalive_s)
            call = stub.WatchStatus(request)
            history = await stub.GetLogs(
                pb.GetLogsRequest(limit=1000, min_level="DEBUG"), timeout=self.timeouts.rpc_s
            )
            self._emit(LogEntries(self.cluster, self.node_id, tuple(history.entries), True))
            await self._follow(stub, call)
        finally:
            self._stub = None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(channel.close()), 2.0)

    async def _follow(self, stub: pb_grpc.AgentStub, call: grpc.aio.UnaryStreamCall) -> None:
        """Read events until the stream fails or the probe finds the agent silent."""
        reader = asyncio.ensure_future(self._read(call))
        watchdog = asyncio.ensure_future(self._watchdog(stub))
        try:
            done, _ = await asyncio.wait({reader, watchdog}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # re-raise the failure that ended the session
        finally:
            call.cancel()
            for task in (reader, watchdog):
                task.cancel()
            await asyncio.gather(reader, watchdog, return_exceptions=True)

    async def _read(self, call: grpc.aio.UnaryStreamCall) -> None:
        # read() rather than `async for`: grpc forbids mixing the two on one call, and
        # read() leaves room to take a first event separately.
        while True:
            event = await call.read()
            if event is grpc.aio.EOF:
                return
            self._on_event(event)

    async def _watchdog(self, stub: pb_grpc.AgentStub) -> None:
        # A stream can stay silent forever when nothing changes (or a frozen agent keeps
        # the TCP connection open): past idle_s without an event, ask for the status.
        while True:
            await asyncio.sleep(1.0)
            if time.monotonic() - self._last_rx < self.timeouts.idle_s:
                continue
            status = await stub.GetStatus(pb.GetStatusRequest(), timeout=self.timeouts.probe_s)
            self._on_status(status)

    def _on_event(self, event: pb.StatusEvent) -> None:
        # The entries first: they say how the node got to this status (the alerts read
        # why a primary left its role from them when the status shows it).
        if event.logs:
            self._emit(LogEntries(self.cluster, self.node_id, tuple(event.logs), False))
        self._on_status(event.status)

    def _on_status(self, status: pb.NodeStatus) -> None:
        if status.node_id and status.node_id != self.node_id:
            raise TlsError(
                f"the agent at {self.address} says it is {status.node_id}, "
                f"not {self.node_id}: check the cluster's addresses"
            )
        self._last_rx = time.monotonic()
        self._emit(NodeSnapshot(self.cluster, self.node_id, status, time.time()))

    def _emit(self, event: ClientEvent) -> None:
        try:
            self._sink(event)
        except Exception:  # a broken view must not kill the connection
            log.exception("event handler failed for %s", type(event).__name__)

    # ----- calls -----------------------------------------------------------------------
    async def run_command(
        self, module: str, command: int, who: str, request_id: int, fullsync: bool = False
    ) -> CommandResult:
        """Send one command; never raises: failures come back as a refused result."""

        def result(accepted: bool, message: str, delivered: bool = True) -> CommandResult:
            return CommandResult(
                self.cluster,
                self.node_id,
                module,
                command,
                request_id,
                accepted,
                message,
                delivered,
            )

        stub = self._stub
        if stub is None:
            return result(False, f"{self.node_id} is not connected: {self.last_error}", False)
        request = pb.CommandRequest(
            module=module, command=command, fullsync=fullsync, issued_by=who
        )
        try:
            reply = await stub.RunCommand(request, timeout=self.timeouts.command_s)
        except grpc.aio.AioRpcError as e:
            answered = e.code() not in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.CANCELLED,
            )
            message = e.details() if answered else describe_error(e, self.timeouts)
            return result(False, message or e.code().name, answered)
        return result(reply.accepted, reply.message)

    async def get_logs(self, module: str = "", limit: int = 1000) -> list[pb.LogEntry]:
        """Older log entries of one module (empty list when not connected)."""
        stub = self._stub
        if stub is None:
            return []
        reply = await stub.GetLogs(
            pb.GetLogsRequest(module=module, limit=limit, min_level="DEBUG"),
            timeout=self.timeouts.rpc_s,
        )
        return list(reply.entries)
