"""The secondary's end of the replication streams (DESIGN §5 "The secondary").

``StreamReceiver`` takes the connections the node's replication port delivers to it
(stream/listener.py, ``adopt``) and does their TLS handshake. The peer must present a
certificate signed by the cluster CA whose CN is the configured peer node id; anything
else is refused with a log line. Each connection carries one module's
stream: HELLO names the module, ``resolve(module)`` gives its Applier (None: refused).
A newer stream for the same module displaces the older one, once the older one's queue
is drained (only one primary exists; its reconnect must win over a half-open leftover).

Ops are applied in seq order by one worker thread per stream (file I/O never stalls the
event loop): the loop decodes and hands batches to it, the one thread hand-off of a
synchronous write on this side. The Applier checks each op's paths as it applies it
(once), so a path that only became unsafe through an earlier op (a symlinked parent) is
still caught. ACKs are cumulative and coalesced: the worker sends one itself (the TLS
transport takes writes from any thread) as soon as it has applied everything it was
given, without waiting for more or going back through the loop. Mode "second" ACKs on
receipt instead (from the loop), except that the release point never passes an Fsync not
yet applied.

An unsafe path -> NACK(EPERM), nothing more is applied from that stream, and it is
closed: the stream is hostile or broken. Any apply error -> NACK(errno) likewise (the
copies diverged; the primary degrades and resyncs). An undecodable frame or a protocol
violation -> ERROR and close; nothing of that read is applied.

The receiver owns each Applier ``resolve`` returns: it calls ``close()`` when the stream
ends, so ``resolve`` must build a fresh one per stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import queue
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from node_agent.protocol import PROTOCOL, Protocol, compatible
from node_agent.replication import ops
from node_agent.replication.local.apply import Applier, NotServing, UnsafePath
from node_agent.replication.stream import link_tls, wire
from node_agent.replication.stream.frame_decoder import FrameDecoder
from node_agent.replication.stream.tls_transport import accept_tls
from node_agent.replication.stream.wire import Frame, FrameType, Hello, Mode, encode_frame

log = logging.getLogger(__name__)
RequestHandler = Callable[[str, bytes], bytes]
ACK_EVERY_BYTES = 8 * 1024 * 1024
ACK_EVERY_S = 0.002


@dataclass(frozen=True)
class StreamStats:
    module: str
    address: str
    mode: Mode
    generation: str  # the primary's generation from its HELLO
    received: int
    applied: int


class StreamReceiver:
    def __init__(
        self,
        *,
        node_id: str,
        peer: str,
        tls: link_tls.TlsPaths | ssl.SSLContext,
        resolve: Callable[[str], Applier | None],
        handle_request: RequestHandler,
        hello_timeout_s: float = 5.0,
        max_queued_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.node_id, self.peer = node_id, peer
        self._ssl = tls if isinstance(tls, ssl.SSLContext) else link_tls.server_context(tls)
        self._resolve, self._handle_request = resolve, handle_request
        self.hello_timeout_s, self.max_queued_bytes = hello_timeout_s, max_queued_bytes
        self._streams: dict[str, _Stream] = {}  # module -> its current stream
        self._conns: set[asyncio.Task[None]] = set()
        self._live: set[_Stream] = set()  # every connection past its TLS handshake

    async def close(self) -> None:
        """Close every stream, wait until their workers finished."""
        tasks = list(self._conns)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        streams = list(self._live)
        for s in streams:  # this side stops: each primary hears it as an orderly end
            s.abort("the secondary's data plane is stopping")
        await asyncio.gather(*(s.finished for s in streams), return_exceptions=True)

    def streams(self) -> list[StreamStats]:
        return [s.stats() for s in self._streams.values()]

    def adopt(self, conn: socket.socket, addr: tuple) -> None:
        """A connection whose route was read by the node's replication port
        (stream/listener.py): the TLS handshake, then the stream."""
        task = asyncio.get_running_loop().create_task(self._handshake(conn, addr))
        self._conns.add(task)
        task.add_done_callback(self._conns.discard)

    async def _handshake(self, conn: socket.socket, addr: tuple) -> None:
        # Handshake errors surface here, so a refused certificate gets a log line.
        where = f"{addr[0]}:{addr[1]}"
        try:
            await accept_tls(conn, self._ssl, lambda: _Stream(self, where), self.hello_timeout_s)
        except (ssl.SSLError, OSError, TimeoutError) as e:
            reason = getattr(e, "verify_message", None) or getattr(e, "reason", None) or e
            log.warning("refused replication connection from %s: TLS handshake failed: %s",
                        where, reason)  # fmt: skip
            conn.close()


class _Stream(asyncio.BufferedProtocol):
    """One connection: decoding and ACKs on the loop, applying in a worker thread. A
    BufferedProtocol: TLS decrypts straight into the decoder's buffer (no extra copies)."""

    def __init__(self, owner: StreamReceiver, where: str) -> None:
        self._owner, self.where = owner, where
        self._loop = asyncio.get_running_loop()
        self._decoder = FrameDecoder()
        self._transport: asyncio.Transport | None = None
        self.cn = ""
        self.module, self.mode, self.generation = "", Mode.SYNC, ""
        self._open = True  # False once refused, broken or lost: ignore further input
        self._running = False  # HELLO accepted
        self._received = self._applied = self._acked = self._acked_applied = 0
        self._fsyncs: deque[int] = deque()  # unapplied Fsync seqs ("second" mode)
        # Bytes handed to the worker (written by the loop) and applied (by the worker): the
        # difference is what the queue holds. Each counter has one writer.
        self._handed = self._done = 0
        self._paused = False
        self._queue: queue.SimpleQueue[list | None] = queue.SimpleQueue()
        self._applier: Applier | None = None
        self.finished: asyncio.Future[None] = self._loop.create_future()
        self._hello_timer: asyncio.TimerHandle | None = None

    # ---- loop side -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._owner._live.add(self)
        self.cn = link_tls.peer_cn(transport.get_extra_info("ssl_object"))
        if self.cn != self._owner.peer:
            log.warning("replication connection from %s: certificate CN %r is not the peer %r",
                        self.where, self.cn, self._owner.peer)  # fmt: skip
        self._hello_timer = self._loop.call_later(self._owner.hello_timeout_s, self._no_hello)

    def _no_hello(self) -> None:
        if not self._running and self._open:
            log.warning("replication connection from %s: no HELLO in time", self.where)
            self._close_now()

    def get_buffer(self, sizehint: int) -> memoryview:
        if not self._open:
            return memoryview(bytearray(65536))  # input after a fault: discarded
        try:
            return self._decoder.get_buffer(sizehint)
        except wire.WireError:
            return memoryview(bytearray(65536))

    def buffer_updated(self, nbytes: int) -> None:
        if not self._open:
            return
        try:
            frames = self._decoder.buffer_updated(nbytes)
        except wire.WireError as e:
            return self._protocol_error(f"invalid frame: {e.reason}")
        batch: list = []
        for frame in frames:
            if not self._open:
                return
            if not self._running:
                self._on_hello(frame)
            elif frame.type is FrameType.OP:
                if frame.seq != self._received + 1:
                    return self._protocol_error(f"op seq {frame.seq} after {self._received}")
                self._received = frame.seq
                if isinstance(frame.body, ops.Fsync):
                    self._fsyncs.append(frame.seq)
                batch.append(frame)
                self._handed += len(getattr(frame.body, "data", b"")) + 64
            elif frame.type is FrameType.REQUEST:
                batch.append(frame)
            elif frame.type is FrameType.PING:
                self._write(encode_frame(FrameType.PONG, frame.seq))
            elif frame.type is FrameType.ERROR:
                log.warning("%s: the primary reported: %s", self.module, frame.body.message)
                return self._close_now()
            else:
                return self._protocol_error(f"unexpected {frame.type.name} frame")
        if batch:
            if self._handed - self._done > self._owner.max_queued_bytes and not self._paused:
                self._paused = True  # before the batch: the worker reports every batch after
                self._transport.pause_reading()  # type: ignore[union-attr]
            self._queue.put(batch)
            if self.mode is Mode.SECOND:
                self._send_second_ack()

    def _on_hello(self, frame: Frame) -> None:
        hello = frame.body
        if frame.type is not FrameType.HELLO or not isinstance(hello, Hello):
            return self._protocol_error(f"expected HELLO, got {frame.type.name}")
        if self._hello_timer is not None:
            self._hello_timer.cancel()
        self.module, self.mode, self.generation = hello.module, hello.mode, hello.generation
        refusal = self._check(hello)
        if refusal:
            log.warning("refused replication of %r from %s (CN %r): %s", hello.module,
                        self.where, self.cn, refusal)  # fmt: skip
            self._write(encode_frame(FrameType.HELLO_ACK, 0, wire.HelloAck(False, refusal)))
            return self._close_now()
        old = self._owner._streams.get(self.module)
        self._owner._streams[self.module] = self
        self._running = True
        if old is None:
            return self._accept()
        log.info("%s: a new stream from %s displaces the one from %s", self.module,
                 self.where, old.where)  # fmt: skip
        old.abort()
        self._transport.pause_reading()  # type: ignore[union-attr]
        old.finished.add_done_callback(lambda _: self._accept(resume=True))

    def _check(self, hello: Hello) -> str:
        if self.cn != self._owner.peer:
            return f"certificate CN {self.cn!r} is not the peer node {self._owner.peer!r}"
        if hello.node_id != self.cn:
            return f"node id {hello.node_id!r} does not match certificate CN {self.cn!r}"
        if not compatible(PROTOCOL, Protocol(hello.protocol, 0)):  # HELLO carries the major
            return (f"incompatible protocol {hello.protocol}.x: this agent speaks {PROTOCOL} "
                    "(a major version is no rolling upgrade: docs/upgrade.md)")  # fmt: skip
        try:
            self._applier = self._owner._resolve(hello.module)
        except Exception as e:
            log.exception("resolving module %r", hello.module)
            return f"module {hello.module} cannot be replicated here: {e}"
        return "" if self._applier is not None else f"unknown module {hello.module}"

    def _accept(self, resume: bool = False) -> None:
        if not self._open:  # closed while waiting for the stream it displaced
            if self._applier is not None:
                self._applier.close()
            return self._finish()
        threading.Thread(target=self._work, name=f"repl-apply-{self.module}", daemon=True).start()
        self._write(encode_frame(FrameType.HELLO_ACK, 0, wire.HelloAck(True)))
        log.info("%s: replication stream from %s accepted (%s, generation %s)", self.module,
                 self.where, self.mode, self.generation)  # fmt: skip
        if resume:
            self._transport.resume_reading()  # type: ignore[union-attr]

    def _protocol_error(self, reason: str) -> None:
        log.warning("replication stream %r from %s: %s; closing", self.module, self.where, reason)
        self._write(encode_frame(FrameType.ERROR, self._applied, wire.Fault(errno.EPROTO, reason)))
        self._close_now()

    def _send_second_ack(self) -> None:
        """Mode "second" (on the loop): release what was received, up to the first Fsync
        not yet applied. (Mode "sync": the worker acknowledges, see _work.)"""
        release = max(self._applied, (self._fsyncs[0] - 1) if self._fsyncs else self._received)
        if release > self._acked or self._applied > self._acked_applied:
            self._acked, self._acked_applied = release, self._applied
            self._write(encode_frame(FrameType.ACK, release, self._applied))

    def _on_progress(self) -> None:
        """The worker applied more (mode "second", or reading is paused)."""
        while self._fsyncs and self._fsyncs[0] <= self._applied:
            self._fsyncs.popleft()
        limit = self._owner.max_queued_bytes // 2
        if self._paused and self._handed - self._done <= limit and self._open:
            self._paused = False
            self._transport.resume_reading()  # type: ignore[union-attr]
        if self.mode is Mode.SECOND:
            self._send_second_ack()

    def _on_fault(self, seq: int, err: int, message: str) -> None:
        self._on_progress()
        self._write(encode_frame(FrameType.NACK, seq, wire.Fault(err, message)))
        self._close_now()

    def _write(self, frame: bytes) -> None:
        """From the loop or the worker (the transport takes writes from any thread)."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(frame)

    def _close_now(self) -> None:
        """Stop taking input; the worker applies what was already queued, then ends."""
        self._open = False
        if self._transport is not None:
            self._transport.close()  # flushes a pending NACK/ERROR/HELLO_ACK first
        if self._running:
            self._queue.put(None)
        else:
            self._finish()

    def abort(self, left_role: str = "") -> None:
        if self._open:
            if left_role and self._running:
                fault = wire.Fault(wire.NACK_LEFT_ROLE, left_role)
                self._write(encode_frame(FrameType.ERROR, self._applied, fault))
            self._close_now()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._open:
            log.info("%s: replication stream from %s ended%s", self.module or "?", self.where,
                     f": {exc}" if exc else "")  # fmt: skip
            self._close_now()

    def _finish(self) -> None:
        if self._owner._streams.get(self.module) is self:
            del self._owner._streams[self.module]
        self._owner._live.discard(self)
        if self._hello_timer is not None:
            self._hello_timer.cancel()
        if not self.finished.done():
            self.finished.set_result(None)

    def stats(self) -> StreamStats:
        return StreamStats(self.module, self.where, self.mode, self.generation,
                           self._received, self._applied)  # fmt: skip

    # ---- worker thread ---------------------------------------------------------------

    def _post(self, fn: Callable[..., None], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody to tell
            self._loop.call_soon_threadsafe(fn, *args)

    def _work(self) -> None:
        applier, applied, acked, nbytes = self._applier, 0, 0, 0
        last_ack = time.monotonic()
        assert applier is not None
        try:
            while (batch := self._queue.get()) is not None:
                for frame in batch:
                    if frame.type is FrameType.REQUEST:
                        self._request(frame)
                        continue
                    fault = self._apply(applier, frame.body)
                    if fault is not None:
                        self._progress(applied, nbytes, acked)  # ACK what came before it
                        return self._post(self._on_fault, frame.seq, *fault)
                    applied = frame.seq
                    nbytes += len(getattr(frame.body, "data", b"")) + 64
                # Coalesce: one ACK once everything handed over is applied (no waiting for
                # more); bounded in bytes and time so a queue that never empties still
                # gets ACKs flowing.
                now = time.monotonic()
                if self._queue.empty() or nbytes > ACK_EVERY_BYTES or now - last_ack > ACK_EVERY_S:
                    acked = self._progress(applied, nbytes, acked)
                    nbytes, last_ack = 0, now
            self._progress(applied, nbytes, acked)
        finally:
            with contextlib.suppress(Exception):
                applier.close()
            self._post(self._finish)

    def _progress(self, applied: int, nbytes: int, acked: int) -> int:
        """Ops up to ``applied`` (``nbytes`` more) are applied. Mode "sync": the worker
        acknowledges them itself, and tells the loop only when the loop needs to know
        (reading paused): a sync write's ACK leaves without a hand-off, and the loop is not
        woken for nothing while the primary reads that ACK. Returns the acknowledged seq."""
        self._applied, self._done = applied, self._done + nbytes
        if self.mode is Mode.SYNC and applied > acked:
            self._write(encode_frame(FrameType.ACK, applied, applied))
            acked = applied
        if self.mode is Mode.SECOND or self._paused:
            self._post(self._on_progress)
        return acked

    def _apply(self, applier: Applier, op: ops.Op) -> tuple[int, str] | None:
        try:
            applier.apply(op)  # checks every path of the op as it uses it
        except UnsafePath as e:
            log.error("%s: refused unsafe op from %s: %s (%r)", self.module, self.where, e, op)
            return errno.EPERM, f"unsafe path: {e}"
        except NotServing as e:
            log.info("%s: ending the stream from %s: %s", self.module, self.where, e.strerror)
            return wire.NACK_LEFT_ROLE, e.strerror or str(e)
        except OSError as e:
            log.error("%s: cannot apply %s: %s", self.module, type(op).__name__, e)
            return e.errno or errno.EIO, str(e)
        except Exception as e:
            log.exception("%s: applying %s failed", self.module, type(op).__name__)
            return errno.EIO, f"{type(e).__name__}: {e}"
        return None

    def _request(self, frame: Frame) -> None:
        flags = 0
        try:
            reply = self._owner._handle_request(self.module, frame.body)  # type: ignore[arg-type]
        except Exception as e:
            reply, flags = f"{type(e).__name__}: {e}".encode(), wire.FLAG_FAILED
        self._write(encode_frame(FrameType.REPLY, frame.seq, reply, flags))
