"""The primary's end of a module's replication stream (DESIGN §5 "Data path").

``StreamSender`` carries the ops the module's replicator (roles/primary.py) hands it while
it is PRIM with a connected peer. Many FUSE threads call ``enqueue(op)``; each call takes
the next seq and appends its frame to an outbox under one lock (so wire order = seq
order), and returns a wait that blocks on the op's own lock until the peer's cumulative
ACK covers that seq. A thread that will wait for its op right away and finds nobody
sending takes the outbox and sends it itself (more frames may join while it does; it
sends them too), straight into the TLS socket (tls_transport.py) -- no hand-off to
another thread on the way out. Ops nobody waits for now (``inline=False``: a
resync's data) are sent by the sender's own thread instead, while their caller goes on.
Small ones whose wait comes later (``lazy``: the kernel's writebacks and timestamps, which
its writeback cache sends right before the FSYNC that settles them) stay in the outbox:
the next op sent takes them along (one TLS write, one wake of the peer, one ACK), and so
does any lazy wait about to block (fuse/writeback.py runs them within 10 ms, or once the
ACK of an earlier writeback it waits for has come); an outbox of LAZY_BYTES wakes the
sender's thread at once, and its watch (every 250 ms at most) sends anything left there
longer than LAZY_S. No thread is woken for a lazy op.
That thread runs an asyncio loop that also reads ACKs and releases waiters (the one
hand-off of a synchronous write on this side), sends what the socket could not take at
once, and watches for silence. Many ops are in flight; nothing waits for a per-op round
trip.

Failure (connection lost, NACK/ERROR, a bad frame, no ACK or PONG within ack_timeout_s):
the sender goes FAILED, calls ``on_failure(reason, ops)`` with every op the peer has not
applied, in seq order (the module marks their zones dirty), and only then releases the
waiters -- with ``NotAcknowledged``: the op is tracked but the peer lacks it, and only the
layer above knows whether that may be acknowledged (roles/primary.py holds it until the
write gate decides). Every later ``enqueue`` goes to ``fallback`` (the tracking path) and
its wait raises the same. A sender is single-use: after FAILED or close(), the module
builds a new one to reconnect; always call close(), which also ends the sender's thread.
``request()``: REQUEST/REPLY, in order with the ops.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable

from node_agent.replication import ops
from node_agent.replication.ops import Op
from node_agent.replication.stream import link_tls
from node_agent.replication.stream.link_tls import FrameLink, LinkError
from node_agent.replication.stream.sender_types import (
    NotAcknowledged,
    Pending,
    PendingRequests,
    RequestFailed,
    SenderState,
    SenderStats,
    unacknowledged,
    wait_pending,
)
from node_agent.replication.stream.tls_transport import TlsTransport
from node_agent.replication.stream.totals import StreamTotals
from node_agent.replication.stream.wire import (
    FLAG_FAILED,
    MAX_WRITE_DATA,
    NACK_LEFT_ROLE,
    Frame,
    FrameType,
    Hello,
    Mode,
    WireError,
    encode_frame,
    frame_header,
    op_payload_parts,
)

__all__ = [
    "LinkError", "NotAcknowledged", "RequestFailed", "SenderState", "SenderStats", "StreamSender",
]  # fmt: skip
log = logging.getLogger(__name__)
LAZY_S = 0.05  # the watch sends a lazy outbox this old (its wait should have, sooner)
LAZY_BYTES = 128 * 1024  # a lazy outbox this big leaves at once (a stream of writebacks)


class StreamSender:
    def __init__(
        self,
        *,
        module: str,
        node_id: str,
        peer: str,
        host: str,
        port: int,
        tls: link_tls.TlsPaths | ssl.SSLContext,
        generation: str,
        on_failure: Callable[[str, list[Op]], None],
        fallback: Callable[[Op], None],
        mode: Mode = Mode.SYNC,
        ack_timeout_s: float = 5.0,
        connect_timeout_s: float = 5.0,
        ping_interval_s: float = 1.0,
        max_unapplied_bytes: int = 64 * 1024 * 1024,
        totals: StreamTotals | None = None,
        lazy_max_s: float = LAZY_S,
    ) -> None:
        self.module, self.node_id, self.peer = module, node_id, peer
        self._host, self._port, self._generation, self._mode = host, port, generation, Mode(mode)
        self._ssl = tls if isinstance(tls, ssl.SSLContext) else link_tls.client_context(tls)
        self._on_failure, self._fallback = on_failure, fallback
        # The peer ended the stream because its module left the secondary role (a stop, a
        # maintenance): an orderly end that the owner logs as such, not as a fault.
        self.ended_orderly = False
        self._ack_timeout, self._connect_timeout = ack_timeout_s, connect_timeout_s
        self._ping_interval, self._max_bytes = ping_interval_s, max_unapplied_bytes
        self._lazy_max = lazy_max_s
        self._where = f"{peer} at {host}:{port}"
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # byte budget, and close() draining
        self._room_waiters = 0
        self._state = SenderState.NEW
        self._failure = ""
        self._seq = self._acked = self._applied = 0
        self._inflight: dict[int, Pending] = {}  # insertion order = seq order
        self._unapplied_bytes = 0
        self._outbox: list[bytes] = []
        self._outbox_hi = self._outbox_ops = self._outbox_bytes = 0
        self._sending = False  # a thread is sending the outbox (_send_outbox)
        self._lazy_since: float | None = None  # when a lazy op found the outbox empty
        self._ops_sent = self._bytes_sent = 0
        self._totals = totals if totals is not None else StreamTotals()  # across streams
        self._sent_marks: deque[tuple[int, float]] = deque()  # (highest seq, write time)
        self._rtt: float | None = None
        self._ping_seq = 0
        self._ping_sent: float | None = None
        self._requests = PendingRequests()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"repl-send-{module}", daemon=True
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._link: FrameLink | None = None

    # ---- called from any thread -------------------------------------------------------

    @property
    def state(self) -> SenderState:
        return self._state

    def connect(self) -> None:
        """Connect, HELLO / HELLO_ACK. Raises LinkError with a message an operator can act on."""
        with self._lock:
            if self._state is not SenderState.NEW:
                raise RuntimeError("a StreamSender connects once; build a new one")
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._connect(), self._loop).result()
        except BaseException as e:
            with self._lock:
                self._state, self._failure = SenderState.FAILED, str(e)
            self._stop_loop()
            raise

    def enqueue(self, op: Op, inline: bool = True, lazy: bool = False) -> Callable[[], None]:
        """Give ``op`` its seq now; the returned wait blocks until the peer applied it (or
        received it, mode "second"). ``inline``: the caller waits right away, so it sends
        the op itself if nobody is sending; otherwise the sender's thread does, at once,
        or -- ``lazy``: the caller runs the wait soon -- with the next op sent or its own
        wait (see the module docstring). Not RUNNING: ``fallback(op)`` runs here and the
        wait raises NotAcknowledged at once."""
        parts: list[Op] = [op]
        if type(op) is ops.Write and len(op.data) > MAX_WRITE_DATA:
            step = MAX_WRITE_DATA
            parts = [
                ops.Write(op.path, op.offset + i, op.data[i : i + step])
                for i in range(0, len(op.data), step)
            ]
        try:
            payloads = [op_payload_parts(p) for p in parts]
        except ValueError as e:  # cannot happen via FUSE (PATH_MAX); degrade, never lose it
            self._fail(f"cannot encode {type(op).__name__}: {e}")
            self._fallback(op)
            return unacknowledged(f"cannot encode {type(op).__name__}")
        sizes = [sum(map(len, pieces)) for pieces in payloads]
        with self._lock:
            if self._state is SenderState.NEW:
                raise RuntimeError("enqueue() before connect()")
            while (
                self._state is SenderState.RUNNING
                and self._unapplied_bytes
                and self._unapplied_bytes + sum(sizes) > self._max_bytes
            ):  # backpressure, mostly for "second" mode where waiters return early
                self._room_waiters += 1
                self._room.wait()
                self._room_waiters -= 1
            pending = None
            if self._state is SenderState.RUNNING:
                now = time.monotonic()
                for i, (part, pieces, size) in enumerate(zip(parts, payloads, sizes, strict=True)):
                    self._seq += 1
                    pending = Pending(self._seq, part, size, now, i == len(parts) - 1)
                    self._inflight[self._seq] = pending
                    self._outbox.append(frame_header(FrameType.OP, self._seq, size) + pieces[0])
                    self._outbox.extend(pieces[1:])  # Write data: never copied here
                self._outbox_hi = self._seq
                self._outbox_ops += len(parts)
                self._outbox_bytes += sum(sizes)
                self._unapplied_bytes += sum(sizes)
                if inline or not lazy or self._outbox_bytes >= LAZY_BYTES:
                    send, self._sending = not self._sending, True
                else:  # stays for company (see the module docstring)
                    send = False
                    if self._lazy_since is None:
                        self._lazy_since = now
        if pending is None:
            self._fallback(op)
            return unacknowledged(f"no stream to {self.peer}: {self._failure or self._state}")
        if send and inline:  # nobody is sending: this thread does (see the module docstring)
            self._send_outbox()
        elif send:
            with contextlib.suppress(RuntimeError):  # closed meanwhile: nothing to send
                self._loop.call_soon_threadsafe(self._send_outbox)
        if lazy and not inline:
            return functools.partial(self._wait_lazy, pending)
        return functools.partial(wait_pending, pending)

    def _wait_lazy(self, pending: Pending) -> None:
        """A lazy op's wait: before blocking, sends what sits in the outbox (its own op,
        or later lazy ops its caller will wait for next) if nobody is sending."""
        if self._outbox and not self._sending:  # (checked again under the lock)
            with self._lock:
                send = bool(self._outbox) and not self._sending
                if send:
                    self._sending = True
            if send:
                self._send_outbox()
        wait_pending(pending)

    def _send_left(self, older_than: float) -> None:
        """Send what lazy ops left in the outbox since before ``older_than`` (monotonic)."""
        with self._lock:
            since = self._lazy_since
            send = since is not None and since <= older_than and not self._sending
            send = send and bool(self._outbox)
            if send:
                self._sending = True
        if send:
            self._send_outbox()

    def request(self, payload: bytes, timeout_s: float) -> bytes:
        """REQUEST in order with the ops before it; the REPLY, or RequestFailed / LinkError /
        TimeoutError (see sender_types.PendingRequests)."""
        with self._lock:
            if self._state is not SenderState.RUNNING:
                raise LinkError(f"no stream to {self.peer}: {self._failure or self._state}")
            rid, waiting = self._requests.add()
            self._outbox.append(frame_header(FrameType.REQUEST, rid, len(payload)) + payload)
            send, self._sending = not self._sending, True
        if send:
            self._send_outbox()
        return self._requests.wait(rid, waiting, timeout_s, self.peer)

    def close(self, timeout_s: float | None = None) -> None:
        """Stop replicating: wait (up to ack_timeout_s) for in-flight ops, fail the rest
        through on_failure, close the connection. Later enqueue() calls use fallback."""
        with self._lock:
            if self._state is SenderState.NEW:
                self._state = SenderState.CLOSED
                return
            if self._state is SenderState.RUNNING:
                self._state = SenderState.CLOSING
        self._send_left(time.monotonic())  # lazy ops left in the outbox
        with self._lock:
            deadline = time.monotonic() + (self._ack_timeout if timeout_s is None else timeout_s)
            while self._inflight and self._state is SenderState.CLOSING:
                if not self._room.wait(max(0.0, deadline - time.monotonic())):
                    break
            left = len(self._inflight)
        if left:
            self._fail(f"closed with {left} ops not acknowledged by {self.peer}")
        with self._lock:
            self._state = SenderState.CLOSED
        self._requests.fail_all(LinkError(f"stream to {self.peer} closed"))
        self._stop_loop()

    def stats(self) -> SenderStats:
        with self._lock:
            return SenderStats(
                self._state, self._ops_sent, self._bytes_sent, len(self._inflight),
                self._acked, self._applied, self._rtt, self._failure,
            )  # fmt: skip

    def _send_outbox(self) -> None:
        """Send the outbox until it is empty, in the calling thread; only one thread at a
        time (the one that set ``_sending``), so frames leave in seq order."""
        transport: TlsTransport = self._link.transport  # type: ignore[union-attr,assignment]
        while True:
            with self._lock:
                batch, self._outbox = self._outbox, []
                hi, n, self._outbox_ops = self._outbox_hi, self._outbox_ops, 0
                self._outbox_bytes, self._lazy_since = 0, None
                if not batch:
                    self._sending = False
                    return
                nbytes = sum(map(len, batch))
                self._ops_sent += n
                self._bytes_sent += nbytes
                self._totals.sent(n, nbytes)
            try:
                for piece in link_tls.coalesce(batch):
                    transport.write(piece)  # never blocks: what the socket refuses is queued
            except Exception as e:  # never leave the outbox without a sender
                with self._lock:
                    self._sending = False
                return self._fail(f"cannot send to {self._where}: {e}")
            if n:
                self._sent_marks.append((hi, time.monotonic()))

    def _send_control(self, frame: bytes) -> None:
        """A PING or PONG, through the outbox: written straight to the transport, it could
        land between a big Write's header and its data, which another thread is sending."""
        with self._lock:
            self._outbox.append(frame)
            send, self._sending = not self._sending, True
        if send:
            self._send_outbox()

    # ---- failure ----------------------------------------------------------------------

    def _fail(self, reason: str) -> None:
        with self._lock:
            if self._state not in (SenderState.RUNNING, SenderState.CLOSING):
                return
            self._state, self._failure = SenderState.FAILED, reason
            lost = list(self._inflight.values())
            self._inflight.clear()
            self._outbox.clear()
            self._unapplied_bytes = self._outbox_bytes = 0
            self._lazy_since = None
            self._room.notify_all()
        log.log(logging.INFO if self.ended_orderly else logging.WARNING,
                "replication of %s to %s failed: %s (%d ops not applied there)",
                self.module, self.peer, reason, len(lost))  # fmt: skip
        self._requests.fail_all(LinkError(f"stream to {self.peer} failed: {reason}"))
        error: OSError = NotAcknowledged(reason)
        try:  # zones must be tracked BEFORE any waiter returns to the application
            self._on_failure(reason, [p.op for p in lost])
        except Exception as e:
            log.exception("on_failure for %s raised; failing the pending writes", self.module)
            error = OSError(errno.EIO, f"replication failed ({reason}) and tracking failed: {e}")
        for p in lost:
            if p.done is not None and not p.released:
                p.error, p.released = error, True
                p.done.release()
        with contextlib.suppress(RuntimeError):  # loop already closed
            self._loop.call_soon_threadsafe(self._teardown)

    def _teardown(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._link is not None and self._link.transport is not None:
            self._link.transport.abort()

    def _stop_loop(self) -> None:
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._loop.close()

    async def _shutdown(self) -> None:
        self._teardown()
        await asyncio.gather(*self._tasks, return_exceptions=True)  # let them finish

    # ---- the loop thread --------------------------------------------------------------

    async def _connect(self) -> None:
        hello = Hello(self.module, self.node_id, self._generation, self._mode)
        link, frames = await link_tls.open_stream(
            self._host, self._port, self._ssl, self.peer, hello, self._connect_timeout
        )
        self._link = link
        with self._lock:
            self._state = SenderState.RUNNING
        for frame in frames:
            self._on_frame(frame)
        link.deliver(self._on_frames, self._on_lost)
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._watch(link)))
        log.info("replicating %s to %s (%s)", self.module, self._where, self._mode)

    def _on_frames(self, frames: list[Frame]) -> None:
        for frame in frames:
            self._on_frame(frame)

    def _on_lost(self, exc: BaseException | None) -> None:
        if exc is None:
            self._fail(f"{self._where} closed the connection")
        elif isinstance(exc, WireError):
            self._fail(f"invalid frame from {self._where}: {exc.reason}")
        else:
            self._fail(f"connection to {self._where} lost: {exc}")

    def _on_frame(self, frame: object) -> None:
        ftype, seq, body = frame.type, frame.seq, frame.body  # type: ignore[attr-defined]
        if ftype is FrameType.ACK:
            self._on_ack(seq, body)
        elif ftype is FrameType.PONG:
            if seq == self._ping_seq:
                self._ping_sent = None
        elif ftype in (FrameType.NACK, FrameType.ERROR) and body.errno == NACK_LEFT_ROLE:
            self.ended_orderly = True
            self._fail(f"{self.peer} left the secondary role: {body.message}")
        elif ftype in (FrameType.NACK, FrameType.ERROR):
            what = f"could not apply op {seq}" if ftype is FrameType.NACK else "reported an error"
            cause = os.strerror(body.errno) if body.errno else "error"
            self._fail(f"{self.peer} {what}: {cause}: {body.message}")
        elif ftype is FrameType.PING and self._link is not None:
            self._send_control(encode_frame(FrameType.PONG, seq))
        elif ftype is FrameType.REPLY:
            self._requests.resolve(seq, body, bool(frame.flags & FLAG_FAILED))  # type: ignore[attr-defined]
        else:
            self._fail(f"{self.peer} sent an unexpected {ftype.name} frame")

    def _on_ack(self, release: int, applied: int) -> None:
        release = max(release, applied)
        if release > self._seq:
            return self._fail(f"{self.peer} acknowledged seq {release}, never sent")
        now, to_release = time.monotonic(), []
        with self._lock:
            for seq in range(self._acked + 1, release + 1):
                p = self._inflight.get(seq)
                if p is not None and p.done is not None and not p.released:
                    p.released = True
                    to_release.append(p)
            self._acked = max(self._acked, release)
            if applied > self._applied:
                self._applied = applied
                while self._inflight:
                    first = next(iter(self._inflight))
                    if first > applied:
                        break
                    self._unapplied_bytes -= self._inflight.pop(first).size
                if self._room_waiters or self._state is SenderState.CLOSING:
                    self._room.notify_all()
        while self._sent_marks and self._sent_marks[0][0] <= release:
            self._rtt = now - self._sent_marks.popleft()[1]
        if to_release:
            self._totals.acknowledged(now - p.t0 for p in to_release)
        for p in to_release:
            p.done.release()  # type: ignore[union-attr]

    async def _watch(self, link: FrameLink) -> None:
        tick = max(0.01, min(0.25, self._ack_timeout / 8))
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            self._send_left(now - self._lazy_max)  # a lazy op whose wait did not come (yet)
            with self._lock:
                oldest = next(iter(self._inflight.values()), None)
            if oldest is not None and now - oldest.t0 > self._ack_timeout:
                return self._fail(
                    f"no acknowledgement of op {oldest.seq} from {self.peer} "
                    f"within {self._ack_timeout:g} s"
                )
            if self._ping_sent is not None:
                if now - self._ping_sent > self._ack_timeout:
                    return self._fail(f"no PONG from {self.peer} within {self._ack_timeout:g} s")
            elif oldest is None and now - link.last_rx > self._ping_interval:
                self._ping_seq += 1
                self._ping_sent = now
                self._send_control(encode_frame(FrameType.PING, self._ping_seq))
