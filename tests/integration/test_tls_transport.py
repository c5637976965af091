"""TlsTransport (node_agent/replication/stream/tls_transport.py) on real TLS over loopback.

The replication stream's sender and receiver run on it; these pin down what they rely on:
every byte arrives, in order, through backpressure (pause/resume) and buffers smaller than
a TLS record; close() sends what was queued before closing; a lost peer ends the
connection once, with the error; a handshake that never completes times out."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import ssl

import pytest

from node_agent.replication.stream import link_tls
from node_agent.replication.stream.tls_transport import (
    _HIGH_WATER,
    TlsTransport,
    accept_tls,
    connect_tls,
)
from protos.security.ca import server_name
from tests.integration.repl_rig import Pki

MiB = 1 << 20


class Collect(asyncio.BufferedProtocol):
    """Keeps what arrives; ``chunk``: the buffer size it offers; ``pause_every``: pause
    reading after each buffer and resume it on the next loop turn."""

    def __init__(self, chunk: int = 256 * 1024, pause_every: bool = False) -> None:
        self.buf = bytearray(chunk)
        self.got = bytearray()
        self.pause_every = pause_every
        self.lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self.transport: TlsTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self.buf)

    def buffer_updated(self, nbytes: int) -> None:
        self.got += self.buf[:nbytes]
        if self.pause_every:
            assert self.transport is not None
            self.transport.pause_reading()
            asyncio.get_running_loop().call_soon(self.transport.resume_reading)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)
        else:  # connection_lost must come once
            self.lost = asyncio.get_running_loop().create_future()
            self.lost.set_exception(AssertionError("connection_lost called twice"))


async def pair(
    pki: Pki, server_proto: Collect, client_proto: Collect
) -> tuple[TlsTransport, TlsTransport]:
    """A connected (server, client) pair on loopback with the replication link's contexts."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    loop = asyncio.get_running_loop()
    sctx = link_tls.server_context(pki.paths("node2"))
    cctx = link_tls.client_context(pki.paths("node1"))

    async def serve() -> TlsTransport:
        conn, _ = await loop.sock_accept(listener)
        transport, _ = await accept_tls(conn, sctx, lambda: server_proto, 5)
        return transport

    try:
        (server, (client, _)) = await asyncio.gather(
            serve(),
            connect_tls("127.0.0.1", listener.getsockname()[1], cctx, server_name("node2"),
                        lambda: client_proto, 5),
        )  # fmt: skip
    finally:
        listener.close()
    return server, client


async def wait_for(cond, timeout: float = 20.0) -> None:  # noqa: ANN001
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


def test_bytes_arrive_whole_both_ways_through_backpressure(pki: Pki) -> None:
    """16 MiB one way in writes of every size (a 1 MiB write is encrypted straight from
    its buffer, ending mid-record), small frames the other way, the receiver pausing after
    every buffer it fills -- and it offers 100-byte buffers, so OpenSSL holds the rest of
    each record where no socket readiness shows it: only resume_reading can fetch it."""

    async def run() -> None:
        srv, cli = Collect(chunk=100, pause_every=True), Collect()
        server, client = await pair(pki, srv, cli)
        data = os.urandom(16 * MiB)
        pos, sizes = 0, [1, 5, 16 * 1024 - 3, 16 * 1024 + 7, MiB, MiB + 1, 3 * MiB]
        i = 0
        while pos < len(data):
            n = sizes[i % len(sizes)]
            client.write(data[pos : pos + n])
            pos += n
            i += 1
            server.write(b"ack%d;" % i)
            await client.drain()
        await wait_for(lambda: len(srv.got) >= len(data), timeout=60)
        acks = b"".join(b"ack%d;" % k for k in range(1, i + 1))
        await wait_for(lambda: len(cli.got) >= len(acks))
        assert hashlib.sha256(srv.got).digest() == hashlib.sha256(data).digest()
        assert bytes(cli.got) == acks
        client.close()
        assert await asyncio.wait_for(srv.lost, 5) is None  # EOF: a clean end
        assert await asyncio.wait_for(cli.lost, 5) is None

    asyncio.run(run())


def test_close_sends_what_was_queued_then_closes(pki: Pki) -> None:
    """The receiver's NACK or ERROR before it closes must reach the primary."""

    async def run() -> None:
        srv, cli = Collect(), Collect()
        server, client = await pair(pki, srv, cli)
        client.pause_reading()  # nobody reads: the server's writes queue in its transport
        big = os.urandom(32 * MiB)  # more than the socket buffers of both ends hold
        server.write(big)
        server.write(b"last words")
        queued = server.get_write_buffer_size()
        server.close()
        assert server.is_closing()
        server.write(b"after close")  # dropped, as asyncio's transports do
        client.resume_reading()
        assert await asyncio.wait_for(cli.lost, 20) is None
        assert bytes(cli.got) == big + b"last words"
        assert queued > 0, "the test meant to close with data still queued"

    asyncio.run(run())


def test_drain_waits_while_more_than_the_high_water_mark_is_queued(pki: Pki) -> None:
    """The sender's backpressure: it stops queueing batches while the peer is not reading."""

    async def run() -> None:
        srv, cli = Collect(), Collect()
        server, client = await pair(pki, srv, cli)
        server.pause_reading()
        data = os.urandom(32 * MiB)
        client.write(data)
        drained = asyncio.ensure_future(client.drain())
        await asyncio.sleep(0.3)
        assert not drained.done() and client.get_write_buffer_size() > _HIGH_WATER
        server.resume_reading()
        await asyncio.wait_for(drained, 20)
        assert client.get_write_buffer_size() <= _HIGH_WATER
        await wait_for(lambda: len(srv.got) >= len(data))
        assert bytes(srv.got) == data
        client.close()
        assert await asyncio.wait_for(srv.lost, 5) is None

    asyncio.run(run())


def test_a_peer_that_vanishes_mid_stream_ends_the_connection_once(pki: Pki) -> None:
    """The sender learns of it through connection_lost (once) and drain() raising."""

    async def run() -> None:
        srv, cli = Collect(), Collect()
        server, client = await pair(pki, srv, cli)
        sock: ssl.SSLSocket = server.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        server.abort()  # linger 0: a RST, not a clean close
        chunk = os.urandom(MiB)
        with pytest.raises(ConnectionResetError):
            async with asyncio.timeout(10):
                while True:
                    client.write(chunk)
                    await client.drain()
                    await asyncio.sleep(0)
        exc = await asyncio.wait_for(cli.lost, 5)
        assert exc is None or isinstance(exc, OSError), exc
        assert client.is_closing() and client.get_write_buffer_size() == 0
        client.write(chunk)  # after the end: dropped
        assert client.get_write_buffer_size() == 0
        await asyncio.sleep(0.05)
        assert cli.lost.exception() is None  # connection_lost was not called again
        assert await asyncio.wait_for(srv.lost, 5) is None

    asyncio.run(run())


def test_a_peer_that_never_answers_the_handshake_times_out(pki: Pki) -> None:
    async def run() -> None:
        mute = socket.create_server(("127.0.0.1", 0))  # accepts, never speaks TLS
        try:
            ctx = link_tls.client_context(pki.paths("node1"))
            with pytest.raises(TimeoutError):
                await connect_tls("127.0.0.1", mute.getsockname()[1], ctx, server_name("node2"),
                                  Collect, 0.3)  # fmt: skip
        finally:
            mute.close()

    asyncio.run(run())


def test_the_peer_certificate_is_checked(pki: Pki) -> None:
    """The client checks the receiver's name (mirrorpair-node2); node1's certificate
    does not carry it, so serving with node1's identity is refused."""

    async def run() -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.setblocking(False)
        loop = asyncio.get_running_loop()
        wrong = link_tls.server_context(pki.paths("node1"))

        async def serve() -> None:
            conn, _ = await loop.sock_accept(listener)
            with pytest.raises((ssl.SSLError, OSError)):
                await accept_tls(conn, wrong, Collect, 5)

        ctx = link_tls.client_context(pki.paths("node1"))
        try:
            results = await asyncio.gather(
                serve(),
                connect_tls("127.0.0.1", listener.getsockname()[1], ctx, server_name("node2"),
                            Collect, 5),
                return_exceptions=True,
            )  # fmt: skip
        finally:
            listener.close()
        assert results[0] is None, results[0]
        assert isinstance(results[1], ssl.SSLCertVerificationError), results[1]

    asyncio.run(run())
