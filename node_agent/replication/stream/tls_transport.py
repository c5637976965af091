"""An asyncio transport driven straight from a non-blocking ``ssl.SSLSocket``.

Why not asyncio's own TLS (``ssl=`` on a connection): it runs OpenSSL over memory BIOs,
so every MiB sent is encrypted into a growing BIO, copied out of it into a bytes object,
copied again into the socket transport's buffer, and each grown BIO is cleansed and
freed -- page faults included. Measured on a replicated 1 MiB sequential write, that made
the primary's stream thread cost 1.9-3.2 ms of CPU per MiB, against 1.1-1.5 ms for the
same TLS on a plain ``SSLSocket``; the receiving side likewise. Here OpenSSL encrypts from
the caller's buffer straight into the socket and decrypts straight into the protocol's
buffer (``asyncio.BufferedProtocol.get_buffer``).

``write`` may be called from any thread: a thread that has a frame to send encrypts and
sends it itself, at once, when nothing is queued before it (the socket is non-blocking:
it never waits), instead of handing it to the loop's thread -- one thread hand-off less
for every synchronous write. What the socket cannot take now is queued, in order, and
sent by the loop when the socket is writable. OpenSSL objects are not thread-safe: every
call on the ``SSLSocket`` (the loop's reads included) is made under one lock. Everything
else runs on the loop's thread: ``close`` (flushes what is queued first), ``abort``,
``pause_reading``/``resume_reading``, ``is_closing``, ``get_write_buffer_size``,
``get_extra_info`` (``ssl_object``, ``peername``, ``socket``), and ``drain()`` for writers
that want backpressure.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections import deque
from typing import Any, TypeVar

__all__ = ["TlsTransport", "accept_tls", "connect_tls"]

P = TypeVar("P", bound=asyncio.BaseProtocol)
# Reads per readiness callback before yielding to the loop's other callbacks (fairness).
_READS_PER_TURN = 64
_HIGH_WATER = 4 * 1024 * 1024  # drain() waits while more than this is queued
_AGAIN = (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError)


async def _handshake(sock: ssl.SSLSocket, timeout_s: float) -> None:
    loop = asyncio.get_running_loop()

    async def run() -> None:
        while True:
            try:
                sock.do_handshake()
                return
            except ssl.SSLWantReadError:
                await _ready(loop, sock, write=False)
            except ssl.SSLWantWriteError:
                await _ready(loop, sock, write=True)

    await asyncio.wait_for(run(), timeout_s)


async def _ready(loop: asyncio.AbstractEventLoop, sock: socket.socket, write: bool) -> None:
    fut = loop.create_future()
    fd = sock.fileno()
    add, remove = (
        (loop.add_writer, loop.remove_writer) if write else (loop.add_reader, loop.remove_reader)
    )
    add(fd, lambda: fut.done() or fut.set_result(None))
    try:
        await fut
    finally:
        remove(fd)


async def connect_tls(
    host: str, port: int, ctx: ssl.SSLContext, server_hostname: str,
    protocol_factory: type[P] | Any, timeout_s: float, preamble: bytes = b"",
) -> tuple[TlsTransport, P]:  # fmt: skip
    """Connect, complete the TLS handshake (together within ``timeout_s``), start the
    protocol. ``preamble`` is sent in clear before the handshake (the route to the
    module's data plane: node_agent/replication/stream/route.py). Raises OSError, ssl.SSLError
    (ssl.SSLCertVerificationError) or TimeoutError."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s

    async def tcp() -> socket.socket:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        error: OSError = OSError(f"no address for {host}")
        for family, kind, proto, _, addr in infos:
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, addr)
                return sock
            except OSError as e:
                sock.close()
                error = e
            except BaseException:  # timed out or cancelled: no socket left behind
                sock.close()
                raise
        raise error

    sock = await asyncio.wait_for(tcp(), timeout_s)
    try:
        if preamble:
            await asyncio.wait_for(loop.sock_sendall(sock, preamble), timeout_s)
        tls = ctx.wrap_socket(sock, server_hostname=server_hostname,
                              do_handshake_on_connect=False)  # fmt: skip
    except BaseException:
        sock.close()
        raise
    return await _start(tls, protocol_factory, max(0.0, deadline - loop.time()))


async def accept_tls(
    sock: socket.socket, ctx: ssl.SSLContext, protocol_factory: type[P] | Any, timeout_s: float
) -> tuple[TlsTransport, P]:
    """The server side of an accepted, non-blocking ``sock``: as connect_tls."""
    try:
        sock.setblocking(False)
        tls = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
    except BaseException:
        sock.close()
        raise
    return await _start(tls, protocol_factory, timeout_s)


async def _start(
    tls: ssl.SSLSocket, protocol_factory: type[P] | Any, timeout_s: float
) -> tuple[TlsTransport, P]:
    try:
        # ACK frames are small: with Nagle, one waits for the previous one's TCP ACK,
        # which the peer's delayed ACK turns into a 40 ms stall.
        tls.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await _handshake(tls, timeout_s)
    except BaseException:
        tls.close()
        raise
    protocol = protocol_factory()
    return TlsTransport(tls, protocol), protocol


class TlsTransport(asyncio.Transport):
    def __init__(self, sock: ssl.SSLSocket, protocol: asyncio.BufferedProtocol) -> None:
        super().__init__()
        self._loop = asyncio.get_running_loop()
        self._sock, self._fd, self._protocol = sock, sock.fileno(), protocol
        if not isinstance(protocol, asyncio.BufferedProtocol):
            raise TypeError("TlsTransport decrypts into the protocol's buffers: "
                            "it needs an asyncio.BufferedProtocol")  # fmt: skip
        self._extra: dict[str, Any] = {"ssl_object": sock, "socket": sock}
        with contextlib.suppress(OSError):
            self._extra["peername"] = sock.getpeername()
        # Every SSLSocket call, and the backlog; reentrant: _lose may run inside _flush.
        self._lock = threading.RLock()
        self._backlog: deque[memoryview] = deque()  # head: what OpenSSL must be re-given
        self._queued = 0
        self._flush_soon = False  # a _flush is scheduled on the loop
        self._writing = self._reading = False
        self._paused = self._closing = self._lost = False
        self._drainers: list[asyncio.Future[None]] = []
        protocol.connection_made(self)
        if not self._paused and not self._closing:
            self._start_reading()

    # -- asyncio.Transport -------------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def is_closing(self) -> bool:
        return self._closing or self._lost

    def get_write_buffer_size(self) -> int:
        return self._queued

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` now, or queue it uncopied: it must not change until sent (bytes).
        From any thread (see the module docstring)."""
        if not data:
            return
        view = memoryview(data).cast("B")
        with self._lock:
            if self._closing or self._lost:
                return
            if not self._backlog:  # nothing before it: straight to the socket
                try:
                    n = self._sock.send(view)
                except _AGAIN:
                    n = 0  # all of it again, from the loop (OpenSSL wants the same head)
                except OSError as e:  # ssl.SSLError included
                    self._loop.call_soon_threadsafe(self._lose, e)
                    return
                if n == len(view):
                    return
                view = view[n:]
            self._backlog.append(view)
            self._queued += len(view)
            schedule = not self._writing and not self._flush_soon
            self._flush_soon |= schedule
        if schedule:  # the loop waits for the socket to be writable, and sends the rest
            self._loop.call_soon_threadsafe(self._flush)

    def pause_reading(self) -> None:
        self._paused = True
        self._stop_reading()

    def resume_reading(self) -> None:
        if self._paused and not self._lost:
            self._paused = False
            if not self._closing:
                self._start_reading()

    def close(self) -> None:
        """Stop reading; close once everything written so far is sent."""
        if self._closing or self._lost:
            return
        with self._lock:
            self._closing = True
            idle = not self._backlog
        self._stop_reading()
        if idle:
            self._loop.call_soon(self._lose, None)

    def abort(self) -> None:
        if not self._lost:
            self._closing = True
            self._lose(None)

    async def drain(self) -> None:
        """Wait until at most _HIGH_WATER bytes are queued; ConnectionResetError once lost."""
        while self._queued > _HIGH_WATER and not self._lost:
            fut = self._loop.create_future()
            self._drainers.append(fut)
            await fut
        if self._lost:
            raise ConnectionResetError("connection lost")

    # -- reading -----------------------------------------------------------------------

    def _start_reading(self) -> None:
        if not self._reading:
            self._reading = True
            self._loop.add_reader(self._fd, self._read_ready)
        # Decrypted bytes may already wait inside OpenSSL, where no readiness shows them.
        self._loop.call_soon(self._read_ready)

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)

    def _read_ready(self) -> None:
        for _ in range(_READS_PER_TURN):
            if not self._reading or self._lost:
                return
            try:
                n = self._read_once()
            except _AGAIN:
                return
            except Exception as e:  # OSError, ssl.SSLError, or (as asyncio) the protocol's
                return self._lose(e)
            if not n:
                return self._eof()
        self._loop.call_soon(self._read_ready)  # more may be pending: come back soon

    def _read_once(self) -> int:
        """Read into the protocol; 0 at EOF. OpenSSL returns at most one record (16 KiB)
        per call: fill the buffer with as many as are here before telling the protocol,
        once. The view is released at once: the protocol may resize its buffer next time."""
        n, error = 0, None
        with self._protocol.get_buffer(-1) as buf:
            try:
                while n < len(buf):
                    with self._lock:
                        got = self._sock.recv_into(buf[n:])
                    if not got:
                        break
                    n += got
            except _AGAIN:
                if not n:
                    raise
            except OSError as e:  # what came before it (a NACK, say) is still read
                if not n:
                    raise
                error = e
        if n:
            self._protocol.buffer_updated(n)
        if error is not None:
            raise error
        return n

    def _eof(self) -> None:
        self._stop_reading()
        try:
            keep_open = self._protocol.eof_received()  # type: ignore[attr-defined]
        except Exception as e:
            return self._lose(e)
        if not keep_open:
            self.close()

    # -- writing -----------------------------------------------------------------------

    def _flush(self) -> None:
        """On the loop: send what is queued while the socket takes it; else wait until it
        is writable."""
        with self._lock:
            self._flush_soon = False
            if self._lost:
                return
            while self._backlog:
                head = self._backlog[0]
                try:
                    # All of head or an exception: OpenSSL then needs the same head again.
                    n = self._sock.send(head)
                except _AGAIN:
                    if not self._writing:
                        self._writing = True
                        self._loop.add_writer(self._fd, self._flush)
                    return self._wake_drainers()  # those waiting for less than _HIGH_WATER
                except OSError as e:  # ssl.SSLError included
                    return self._lose(e)
                self._queued -= n
                if n < len(head):
                    self._backlog[0] = head[n:]
                else:
                    self._backlog.popleft()
            if self._writing:
                self._writing = False
                self._loop.remove_writer(self._fd)
        self._wake_drainers()
        if self._closing:
            self._lose(None)

    def _wake_drainers(self) -> None:
        if self._queued <= _HIGH_WATER or self._lost:
            for fut in self._drainers:
                if not fut.done():
                    fut.set_result(None)
            self._drainers.clear()

    # -- the end -----------------------------------------------------------------------

    def _lose(self, exc: BaseException | None) -> None:
        with self._lock:
            if self._lost:
                return
            self._lost = self._closing = True
            self._stop_reading()
            if self._writing:
                self._writing = False
                self._loop.remove_writer(self._fd)
            self._backlog.clear()
            self._queued = 0
            with contextlib.suppress(OSError):
                self._sock.close()
        self._wake_drainers()
        self._loop.call_soon(self._protocol.connection_lost, exc)
