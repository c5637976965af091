"""Finding agents: mDNS browsing of ``_mirrorpair._tcp`` and reading the certificate an
address serves (its fingerprint is what the agent printed and advertises)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import socket
import ssl

import ifaddr
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from zeroconf import IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from console.setup.backend import FoundServer

SERVICE_TYPE = "_mirrorpair._tcp.local."
CONNECT_TIMEOUT_S = 1.0


def fingerprint_of(cert_pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(cert_pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected host:port, got {address!r}")
    return host.strip("[]"), int(port)


def _served_certificate(address: str, timeout: float) -> bytes:
    host, port = split_address(address)
    ctx = ssl.create_default_context()
    # Read the certificate before trusting it: the caller compares its fingerprint.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    with (
        socket.create_connection((host, port), timeout=timeout) as sock,
        ctx.wrap_socket(sock, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise OSError("the server sent no certificate")
    return ssl.DER_cert_to_PEM_cert(der).encode()


async def served_certificate(address: str, timeout: float = 5.0) -> bytes:
    """The PEM certificate the server at ``address`` presents (OSError if unreachable)."""
    return await asyncio.to_thread(_served_certificate, address, timeout)


async def _answers_as(address: str, fingerprint: str) -> bool:
    """Whether ``address`` serves the advertised certificate (not merely accepts a
    connection: a proxy or another machine may)."""
    try:
        pem = await asyncio.wait_for(served_certificate(address, CONNECT_TIMEOUT_S), 2.0)
    except (OSError, TimeoutError, ValueError):
        return False
    return not fingerprint or fingerprint_of(pem) == fingerprint


def _on_link_first(hosts: list[str]) -> list[str]:
    """Addresses in a subnet of this PC first: an agent advertises all its networks
    (heartbeat links too), and the LAN one is what the console should dial."""
    networks = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                with contextlib.suppress(ValueError):
                    networks.append(ipaddress.ip_network(f"{ip.ip}/{ip.network_prefix}", False))

    def on_link(host: str) -> bool:
        with contextlib.suppress(ValueError):
            return any(ipaddress.ip_address(host) in n for n in networks)
        return False

    return sorted(hosts, key=lambda h: not on_link(h))


async def browse(seconds: float, interfaces: list[str] | None = None) -> list[FoundServer]:
    """Agents advertising ``_mirrorpair._tcp`` within ``seconds``, each at its first
    advertised address that accepts a connection from here."""
    zc = AsyncZeroconf(interfaces=interfaces or "all", ip_version=IPVersion.V4Only)  # type: ignore[arg-type]
    names: set[str] = set()

    def changed(zeroconf, service_type, name, state_change) -> None:  # type: ignore[no-untyped-def]
        if state_change is not ServiceStateChange.Removed:
            names.add(name)

    browser = AsyncServiceBrowser(zc.zeroconf, [SERVICE_TYPE], handlers=[changed])
    try:
        await asyncio.sleep(seconds)
        found: list[FoundServer] = []
        for name in sorted(names):
            info = AsyncServiceInfo(SERVICE_TYPE, name)
            if not await info.async_request(zc.zeroconf, 3000) or info.port is None:
                continue
            props = {k.decode(): (v or b"").decode() for k, v in (info.properties or {}).items()}
            for host in _on_link_first(info.parsed_addresses()):
                if await _answers_as(f"{host}:{info.port}", props.get("fp", "")):
                    found.append(
                        FoundServer(
                            address=f"{host}:{info.port}",
                            hostname=props.get("host", ""),
                            version=props.get("version", ""),
                            paired=props.get("paired") == "1",
                            pairing_open=props.get("open") == "1",
                            fingerprint=props.get("fp", ""),
                            source="mdns",
                            cluster_name=props.get("cluster", ""),
                        )  # fmt: skip
                    )
                    break
        return found
    finally:
        await browser.async_cancel()
        await zc.async_close()
