"""gRPC credentials for mutual TLS against the cluster CA (DESIGN §7).

Servers require a client certificate signed by the cluster CA; clients verify
the server against the same CA and, because nodes are dialled by IP, check the
server's certificate for the DNS name ``mirrorpair-<node>`` (``server_name``)
instead of the dialled address (``grpc.ssl_target_name_override``).

Files are checked up front (exists, PEM, key matches certificate, issued by the
CA, not expired) so a mistake fails with a message naming the file rather than
as an opaque handshake failure later.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from typing import Any, Protocol

import grpc
from cryptography.exceptions import InvalidSignature

from protos.security.ca import (
    TlsError,
    load_certificate,
    load_private_key,
    public_key_der,
    read_file,
    server_name,
)
from protos.security.roles import Role, role_of_pem

__all__ = [
    "TlsError",
    "TlsPaths",
    "aio_secure_channel",
    "channel_credentials",
    "channel_options",
    "peer_common_name",
    "peer_role",
    "secure_channel",
    "server_credentials",
    "server_name",
]

StrPath = str | os.PathLike[str]
_CN_PROPERTY = "x509_common_name"  # grpc core's name for the peer certificate's CN
_PEM_PROPERTY = "x509_pem_cert"


class TlsPaths(Protocol):
    """Anything with ca/cert/key paths, e.g. ``ClusterConfig.paths_for(node_id)``."""

    @property
    def ca(self) -> StrPath: ...

    @property
    def cert(self) -> StrPath: ...

    @property
    def key(self) -> StrPath: ...


def server_credentials(
    paths: TlsPaths, *, require_client_auth: bool = True
) -> grpc.ServerCredentials:
    """Credentials for an agent's gRPC server: its certificate, and client
    certificates required and verified against the cluster CA."""
    ca_pem, cert_pem, key_pem = _load_checked(paths.ca, paths.cert, paths.key)
    return grpc.ssl_server_credentials(
        [(key_pem, cert_pem)],
        root_certificates=ca_pem,
        require_client_auth=require_client_auth,
    )


def channel_credentials(
    ca: StrPath, cert: StrPath | None = None, key: StrPath | None = None
) -> grpc.ChannelCredentials:
    """Client credentials: trust only the cluster CA, present ``cert``/``key``.

    Without cert and key the channel can only reach calls that need no client
    certificate (the pairing call of an unpaired agent).
    """
    if (cert is None) != (key is None):
        raise ValueError("give both a certificate and its key, or neither")
    if cert is None or key is None:
        ca_pem = read_file(ca, "CA certificate")
        load_certificate(ca, "CA certificate")
        return grpc.ssl_channel_credentials(root_certificates=ca_pem)
    ca_pem, cert_pem, key_pem = _load_checked(ca, cert, key)
    return grpc.ssl_channel_credentials(
        root_certificates=ca_pem, private_key=key_pem, certificate_chain=cert_pem
    )


def channel_options(target_name_override: str | None) -> list[tuple[str, Any]]:
    """Channel options making TLS check the server certificate for this name."""
    if not target_name_override:
        return []
    return [("grpc.ssl_target_name_override", target_name_override)]


def secure_channel(
    address: str,
    creds: grpc.ChannelCredentials,
    server: str | None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.Channel:
    """A sync channel to ``address`` (host:port) whose certificate must name
    ``server`` (e.g. ``server_name("node1")``); None checks the address itself."""
    return grpc.secure_channel(address, creds, options=[*options, *channel_options(server)])


def aio_secure_channel(
    address: str,
    creds: grpc.ChannelCredentials,
    server: str | None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """As ``secure_channel``, for asyncio."""
    return grpc.aio.secure_channel(address, creds, options=[*options, *channel_options(server)])


def peer_common_name(context: grpc.ServicerContext | grpc.aio.ServicerContext) -> str:
    """The CN of the verified client certificate of the current call ("" if none).

    Works with sync and asyncio servicer contexts. grpc only reports a CN
    after the certificate chain verified against the server's CA.
    """
    values = context.auth_context().get(_CN_PROPERTY) or []
    return values[0].decode("utf-8", "replace") if values else ""


def peer_role(context: grpc.ServicerContext | grpc.aio.ServicerContext) -> Role:
    """The role of the verified client certificate of the current call (NONE if none)."""
    values = context.auth_context().get(_PEM_PROPERTY) or []
    return role_of_pem(values[0]) if values and peer_common_name(context) else Role.NONE


def _load_checked(ca: StrPath, cert: StrPath, key: StrPath) -> tuple[bytes, bytes, bytes]:
    """The three PEM blobs, after checking they make a working identity."""
    ca_pem, cert_pem, key_pem = (
        read_file(ca, "CA certificate"),
        read_file(cert, "certificate"),
        read_file(key, "key"),
    )
    ca_cert = load_certificate(ca, "CA certificate")
    certificate = load_certificate(cert, "certificate")
    private_key = load_private_key(key, "key")
    if public_key_der(certificate.public_key()) != public_key_der(private_key.public_key()):
        raise TlsError(f"key {key} does not belong to certificate {cert}")
    try:
        certificate.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        # The usual cause: the CA was re-created after this certificate was issued.
        raise TlsError(f"certificate {cert} was not issued by the CA in {ca}") from None
    now = dt.datetime.now(dt.UTC)
    for path, c in ((cert, certificate), (ca, ca_cert)):
        if c.not_valid_after_utc < now:
            raise TlsError(f"certificate {path} expired on {c.not_valid_after_utc:%Y-%m-%d}")
    return ca_pem, cert_pem, key_pem
