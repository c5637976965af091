"""The cluster CA and mTLS credentials, against a real gRPC server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime as dt
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from node_agent.config.model import NodePaths
from protos.security.ca import TlsError, create_ca, issue_certificate, server_name
from protos.security.credentials import (
    aio_secure_channel,
    channel_credentials,
    peer_common_name,
    secure_channel,
    server_credentials,
)

WHOAMI = "/mirrorpair.test.Whoami/Get"
NODE1 = server_name("node1")


@dataclass(frozen=True)
class Pki:
    ca: Path
    ca_dir: Path
    node1: tuple[Path, Path]  # (cert, key)
    console: tuple[Path, Path]
    other_ca: Path
    intruder: tuple[Path, Path]  # a node cert signed by another CA


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca, _ = create_ca(d / "ca", "test-cluster")
    other_ca, _ = create_ca(d / "other", "evil-cluster")
    return Pki(
        ca=ca,
        ca_dir=d / "ca",
        node1=issue_certificate(d / "ca", "node1", d / "certs", ips=["10.0.0.1"]),
        console=issue_certificate(d / "ca", "console", d / "certs", server=False),
        other_ca=other_ca,
        intruder=issue_certificate(d / "other", "node2", d / "evil"),
    )


def _whoami(request: bytes, context: grpc.ServicerContext) -> bytes:
    return peer_common_name(context).encode()


_WHOAMI_HANDLER = grpc.method_handlers_generic_handler(
    "mirrorpair.test.Whoami", {"Get": grpc.unary_unary_rpc_method_handler(_whoami)}
)


@pytest.fixture
def server(pki: Pki) -> Iterator[str]:
    """A real mTLS server for node1 serving health and whoami; yields its address."""
    srv = grpc.server(ThreadPoolExecutor(max_workers=4))
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, srv)
    srv.add_generic_rpc_handlers((_WHOAMI_HANDLER,))
    paths = NodePaths(data_dir=Path("/nonexistent"), ca=pki.ca, cert=pki.node1[0], key=pki.node1[1])
    port = srv.add_secure_port("127.0.0.1:0", server_credentials(paths))
    srv.start()
    yield f"127.0.0.1:{port}"
    srv.stop(None)


def check(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(), timeout=10).status


def assert_refused(channel: grpc.Channel, why: str = "") -> None:
    """The handshake fails; ``why`` is checked when the client is the side that refuses
    (when the server refuses, the client only sees the socket close)."""
    with channel, pytest.raises(grpc.RpcError) as info:
        check(channel)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value
    assert why in (info.value.details() or ""), info.value


def test_valid_client_certificate_is_served(server: str, pki: Pki) -> None:
    creds = channel_credentials(pki.ca, *pki.console)
    with secure_channel(server, creds, NODE1) as channel:
        assert check(channel) == health_pb2.HealthCheckResponse.SERVING


def test_peer_common_name_is_the_client_cn(server: str, pki: Pki) -> None:
    for (cert, key), expected in ((pki.console, b"console"), (pki.node1, b"node1")):
        with secure_channel(server, channel_credentials(pki.ca, cert, key), NODE1) as channel:
            assert channel.unary_unary(WHOAMI)(b"", timeout=10) == expected


def test_localhost_is_in_node_certificates(server: str, pki: Pki) -> None:
    creds = channel_credentials(pki.ca, *pki.console)
    port = server.rsplit(":", 1)[1]
    with secure_channel(f"localhost:{port}", creds, None) as channel:
        assert check(channel) == health_pb2.HealthCheckResponse.SERVING


def test_client_without_certificate_is_refused(server: str, pki: Pki) -> None:
    assert_refused(secure_channel(server, channel_credentials(pki.ca), NODE1))


def test_client_with_certificate_from_another_ca_is_refused(server: str, pki: Pki) -> None:
    # The intruder trusts our CA (it is public) but its certificate is not ours.
    creds = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.read_bytes(),
        private_key=pki.intruder[1].read_bytes(),
        certificate_chain=pki.intruder[0].read_bytes(),
    )
    assert_refused(secure_channel(server, creds, NODE1))


def test_insecure_channel_is_refused(server: str) -> None:
    assert_refused(grpc.insecure_channel(server))


def test_server_from_another_ca_is_not_trusted(server: str, pki: Pki) -> None:
    creds = grpc.ssl_channel_credentials(
        root_certificates=pki.other_ca.read_bytes(),
        private_key=pki.intruder[1].read_bytes(),
        certificate_chain=pki.intruder[0].read_bytes(),
    )
    assert_refused(secure_channel(server, creds, NODE1), "CERTIFICATE_VERIFY_FAILED")


def test_wrong_server_name_is_refused(server: str, pki: Pki) -> None:
    creds = channel_credentials(pki.ca, *pki.console)
    assert_refused(secure_channel(server, creds, server_name("node2")), "mirrorpair-node2")


def test_aio_server_and_channel(pki: Pki) -> None:
    async def main() -> bytes:
        srv = grpc.aio.server()

        async def whoami(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return peer_common_name(context).encode()

        handler = grpc.unary_unary_rpc_method_handler(whoami)
        srv.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("mirrorpair.test.Whoami", {"Get": handler}),)
        )
        paths = NodePaths(Path("/nonexistent"), pki.ca, pki.node1[0], pki.node1[1])
        port = srv.add_secure_port("127.0.0.1:0", server_credentials(paths))
        await srv.start()
        try:
            creds = channel_credentials(pki.ca, *pki.console)
            async with aio_secure_channel(f"127.0.0.1:{port}", creds, NODE1) as channel:
                return await channel.unary_unary(WHOAMI)(b"", timeout=10)
        finally:
            await srv.stop(None)

    assert asyncio.run(main()) == b"console"


# --- certificates --------------------------------------------------------------------


def test_ca_certificate(pki: Pki) -> None:
    ca = x509.load_pem_x509_certificate(pki.ca.read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    life = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert life >= dt.timedelta(days=3650)
    assert "test-cluster" in ca.subject.rfc4514_string()


def test_node_certificate_usages_and_names(pki: Pki) -> None:
    cert = x509.load_pem_x509_certificate(pki.node1[0].read_bytes())
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mirrorpair-node1", "localhost"]
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    assert ips == {"10.0.0.1", "127.0.0.1", "::1"}
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_console_certificate_is_client_only(pki: Pki) -> None:
    cert = x509.load_pem_x509_certificate(pki.console[0].read_bytes())
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_keys_are_private_and_files_not_overwritten(tmp_path: Path) -> None:
    ca_cert, ca_key = create_ca(tmp_path, "c")
    cert, key = issue_certificate(tmp_path, "node2", tmp_path / "out")
    for k in (ca_key, key):
        assert stat.S_IMODE(k.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert.stat().st_mode) & 0o077 == 0o044  # certificates are public
    before = ca_cert.read_bytes()
    with pytest.raises(FileExistsError, match="ca.pem|ca.key"):
        create_ca(tmp_path, "c")
    with pytest.raises(FileExistsError, match="node2"):
        issue_certificate(tmp_path, "node2", tmp_path / "out")
    assert ca_cert.read_bytes() == before
    key.chmod(0o644)
    issue_certificate(tmp_path, "node2", tmp_path / "out", force=True)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    create_ca(tmp_path, "c", force=True)
    assert ca_cert.read_bytes() != before


def test_bad_names_and_ips(tmp_path: Path) -> None:
    create_ca(tmp_path, "c")
    with pytest.raises(ValueError, match="name"):
        issue_certificate(tmp_path, "../evil", tmp_path)
    with pytest.raises(ValueError, match="not an IP"):
        issue_certificate(tmp_path, "node1", tmp_path, ips=["10.0.0.300"])
    with pytest.raises(TlsError, match=r"missing/ca\.pem does not exist"):
        issue_certificate(tmp_path / "missing", "node1", tmp_path)


# --- file errors name the file ---------------------------------------------------------


def _paths(ca: Path, cert: Path, key: Path) -> NodePaths:
    return NodePaths(data_dir=Path("/nonexistent"), ca=ca, cert=cert, key=key)


def test_missing_and_unreadable_files_are_named(pki: Pki, tmp_path: Path) -> None:
    cert, key = pki.node1
    missing = tmp_path / "nope.key"
    with pytest.raises(TlsError, match=f"key file {missing} does not exist"):
        server_credentials(_paths(pki.ca, cert, missing))
    with pytest.raises(TlsError, match=f"cannot read CA certificate file {tmp_path}"):
        channel_credentials(tmp_path, cert, key)  # a directory: unreadable even for root
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello")
    with pytest.raises(TlsError, match=f"certificate file {garbage} is not a PEM certificate"):
        server_credentials(_paths(pki.ca, garbage, key))
    with pytest.raises(TlsError, match=f"key file {garbage} is not a PEM private key"):
        channel_credentials(pki.ca, cert, garbage)


def test_mismatched_key_and_foreign_certificate(pki: Pki) -> None:
    with pytest.raises(TlsError, match=f"key {pki.console[1]} does not belong to"):
        server_credentials(_paths(pki.ca, pki.node1[0], pki.console[1]))
    with pytest.raises(TlsError, match=f"certificate {pki.intruder[0]} was not issued by"):
        channel_credentials(pki.ca, *pki.intruder)
    with pytest.raises(ValueError, match="both"):
        channel_credentials(pki.ca, pki.node1[0])
