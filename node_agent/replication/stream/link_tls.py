"""The replication link: TLS contexts, stream set-up (HELLO / HELLO_ACK), write batching
(the TLS itself: tls_transport.py).

Same trust model as the gRPC API (protos.security.credentials), for plain ``ssl`` sockets:
the sender presents its node certificate and checks that the receiver's certificate,
signed by the cluster CA, names ``mirrorpair-<peer>``; the receiver requires a client
certificate signed by the cluster CA and then checks its CN is the configured peer.
TLS 1.3 only: both ends are ours, and 1.3 saves a round trip at connect.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import time
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature

from node_agent.replication.stream.frame_decoder import FrameDecoder
from node_agent.replication.stream.route import route_preamble
from node_agent.replication.stream.tls_transport import connect_tls
from node_agent.replication.stream.wire import (
    Frame,
    FrameType,
    Hello,
    HelloAck,
    WireError,
    encode_frame,
)
from protos.security.ca import (
    TlsError,
    load_certificate,
    load_private_key,
    public_key_der,
    server_name,
)
from protos.security.credentials import TlsPaths

__all__ = [
    "FrameLink",
    "LinkError",
    "TlsError",
    "TlsPaths",
    "check_identity",
    "client_context",
    "coalesce",
    "open_stream",
    "peer_cn",
    "server_context",
]
COALESCE = 64 * 1024


class LinkError(ConnectionError):
    """The stream could not be established; ``refused``: the peer said no (HELLO_ACK)."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


def check_identity(paths: TlsPaths) -> None:
    """Fail with a message naming the file when ca/cert/key cannot work together,
    rather than with an opaque handshake error later."""
    ca_cert = load_certificate(paths.ca, "CA certificate")
    cert = load_certificate(paths.cert, "certificate")
    key = load_private_key(paths.key, "key")
    if public_key_der(cert.public_key()) != public_key_der(key.public_key()):
        raise TlsError(f"key {paths.key} does not belong to certificate {paths.cert}")
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        raise TlsError(f"certificate {paths.cert} was not issued by the CA in {paths.ca}") from None
    if cert.not_valid_after_utc < dt.datetime.now(dt.UTC):
        raise TlsError(f"certificate {paths.cert} expired on {cert.not_valid_after_utc:%Y-%m-%d}")


def _context(purpose: ssl.Purpose, paths: TlsPaths) -> ssl.SSLContext:
    check_identity(paths)
    ctx = ssl.create_default_context(purpose, cafile=str(paths.ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(str(paths.cert), str(paths.key))
    return ctx


def client_context(paths: TlsPaths) -> ssl.SSLContext:
    """For the sender; connect with ``server_hostname=server_name(peer)``."""
    ctx = _context(ssl.Purpose.SERVER_AUTH, paths)
    ctx.check_hostname = True  # the name checked is mirrorpair-<peer>, not the address
    return ctx


def server_context(paths: TlsPaths) -> ssl.SSLContext:
    """For the receiver: a client certificate signed by the cluster CA is required."""
    ctx = _context(ssl.Purpose.CLIENT_AUTH, paths)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def peer_cn(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str:
    """The CN of the peer's verified certificate ("" if none)."""
    cert = ssl_object.getpeercert() if ssl_object is not None else None
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""


class FrameLink(asyncio.BufferedProtocol):
    """The sender's protocol on a TlsTransport: decodes frames as they arrive. Until
    ``deliver`` is called (during HELLO) they are kept for ``first_frames``; then each
    batch goes to ``on_frames``, and the end to ``on_lost`` (None: the peer closed; a
    WireError: it sent garbage; else the OSError / ssl.SSLError)."""

    def __init__(self) -> None:
        self.decoder = FrameDecoder()
        self.transport: asyncio.Transport | None = None
        self.last_rx = time.monotonic()
        self._kept: list[Frame] = []
        self._lost: tuple[BaseException | None] | None = None
        self._changed = asyncio.Event()
        self._on_frames: Callable[[list[Frame]], None] | None = None
        self._on_lost: Callable[[BaseException | None], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.decoder.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self.last_rx = time.monotonic()
        frames = self.decoder.buffer_updated(nbytes)  # a WireError ends the connection
        if frames and self._on_frames is not None:
            self._on_frames(frames)
        elif frames:
            self._kept += frames
            self._changed.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = (exc,)
        self._changed.set()
        if self._on_lost is not None:
            self._on_lost(exc)

    async def first_frames(self, where: str) -> list[Frame]:
        while not self._kept:
            if self._lost is not None:
                if self._lost[0] is not None:
                    raise self._lost[0]
                # TLS 1.3: also how a refused client certificate often looks
                raise LinkError(f"{where} closed the connection during HELLO "
                                "(does it accept our certificate and node id?)")  # fmt: skip
            self._changed.clear()
            await self._changed.wait()
        frames, self._kept = self._kept, []
        return frames

    def deliver(
        self,
        on_frames: Callable[[list[Frame]], None],
        on_lost: Callable[[BaseException | None], None],
    ) -> None:
        """From now on, frames go to ``on_frames`` and the end to ``on_lost``."""
        self._on_frames, self._on_lost = on_frames, on_lost
        if self._kept:
            frames, self._kept = self._kept, []
            on_frames(frames)
        if self._lost is not None:
            on_lost(self._lost[0])


async def open_stream(
    host: str, port: int, ctx: ssl.SSLContext, peer: str, hello: Hello, timeout_s: float
) -> tuple[FrameLink, list[Frame]]:
    """Connect to ``peer``'s receiver, send HELLO, wait for an accepting HELLO_ACK.

    Returns the link (its ``transport`` writes) and any frames that followed the
    HELLO_ACK. Every failure is a LinkError whose message says what to check.
    """
    where, t = f"{peer} at {host}:{port}", timeout_s
    try:
        transport, link = await connect_tls(host, port, ctx, server_name(peer), FrameLink, t,
                                            route_preamble(hello.module))  # fmt: skip
    except ssl.SSLCertVerificationError as e:
        raise LinkError(f"certificate of {where} not accepted: {e.verify_message}") from None
    except ssl.SSLError as e:
        raise LinkError(f"TLS handshake with {where} failed: {e.reason or e}") from None
    except TimeoutError:
        raise LinkError(f"no connection to {where} within {t:g} s") from None
    except OSError as e:
        raise LinkError(f"cannot connect to {where}: {e.strerror or e}") from None
    try:
        transport.write(encode_frame(FrameType.HELLO, 0, hello))
        frames = await asyncio.wait_for(link.first_frames(where), t)
    except BaseException as e:
        transport.abort()
        if isinstance(e, TimeoutError):
            raise LinkError(f"no HELLO_ACK from {where} within {t:g} s") from None
        if isinstance(e, ssl.SSLError):  # TLS 1.3: a refused client cert shows up here
            raise LinkError(f"{where} refused our TLS certificate: {e.reason or e}") from None
        if isinstance(e, WireError):
            raise LinkError(f"{where} sent an invalid frame: {e.reason}") from None
        if isinstance(e, OSError) and not isinstance(e, LinkError):
            # TLS 1.3: a server refusing our certificate may reset the connection before
            # its alert is read; its own log says which it was.
            raise LinkError(f"connection to {where} lost during HELLO: {e} (does it accept "
                            "our certificate and node id?)") from None  # fmt: skip
        raise
    ack = frames[0].body
    if not isinstance(ack, HelloAck) or not ack.accepted:
        transport.abort()
        why = ack.reason if isinstance(ack, HelloAck) else f"sent {frames[0].type.name}"
        raise LinkError(f"{where} refused module {hello.module}: {why}", refused=True)
    return link, frames[1:]


def coalesce(batch: list[bytes]) -> list[bytes]:
    """Small pieces joined into ~COALESCE-byte writes (fewer TLS records and syscalls); big
    ones (Write data) passed through uncopied. Measured: cutting big ones smaller, so the
    peer could decrypt while we encrypt, cost more CPU than it saved."""
    out: list[bytes] = []
    small: list[bytes] = []
    size = 0
    for item in batch:
        if len(item) >= COALESCE:
            if small:
                out.append(b"".join(small))
                small, size = [], 0
            out.append(item)
        else:
            small.append(item)
            size += len(item)
            if size >= COALESCE:
                out.append(b"".join(small))
                small, size = [], 0
    if small:
        out.append(b"".join(small))
    return out
