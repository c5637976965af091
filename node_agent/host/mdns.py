"""The agent's mDNS advertisement (DESIGN §7): service ``_mirrorpair._tcp`` so the
console's setup wizard finds the servers of a site without typing addresses.

TXT record: ``host`` (hostname), ``node`` and ``cluster`` once paired, ``version``,
``paired`` and ``open`` ("1"/"0": pairing open), ``fp`` (SHA-256 of the certificate the
agent serves, to compare with what the server printed). The instance name carries the
start of the fingerprint: two agents on one host (the demo, the tests) stay distinct.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass

from zeroconf import IPVersion, ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

from node_agent.host import facts

log = logging.getLogger(__name__)

SERVICE_TYPE = "_mirrorpair._tcp.local."


@dataclass(frozen=True)
class Advert:
    hostname: str
    port: int
    version: str
    paired: bool
    pairing_open: bool
    fingerprint: str
    node_id: str = ""
    cluster: str = ""
    listen_host: str = ""  # "" or a wildcard: every address of the node

    def properties(self) -> dict[str, str]:
        return {
            "host": self.hostname, "node": self.node_id, "cluster": self.cluster,
            "version": self.version, "paired": "1" if self.paired else "0",
            "open": "1" if self.pairing_open else "0", "fp": self.fingerprint,
        }  # fmt: skip


def _advertised_addresses(listen_host: str) -> list[bytes]:
    """The listen address, or every IPv4 address of the node when it listens on all
    (a host name is resolved)."""
    if listen_host and listen_host not in ("0.0.0.0", "::"):
        infos = socket.getaddrinfo(listen_host, None, socket.AF_INET)
        return list(dict.fromkeys(socket.inet_aton(i[4][0]) for i in infos))
    return [socket.inet_aton(a.address) for a in facts.addresses() if ":" not in a.address]


class Advertiser:
    """Registers the advert and keeps it current (paired, pairing open, fingerprint)."""

    def __init__(self) -> None:
        self._zc: AsyncZeroconf | None = None
        self._info: ServiceInfo | None = None
        self._closed = False

    async def publish(self, advert: Advert) -> None:
        try:
            addresses = await asyncio.to_thread(_advertised_addresses, advert.listen_host)
            info = ServiceInfo(
                SERVICE_TYPE,
                f"{advert.hostname}-{advert.fingerprint[:8]}.{SERVICE_TYPE}",
                addresses=addresses,
                port=advert.port,
                properties=advert.properties(),
                server=f"mp-{advert.fingerprint[:12]}.local.",
            )
            if self._closed:  # the agent is stopping: advertise nothing more
                return
            if self._zc is None:
                self._zc = AsyncZeroconf(ip_version=IPVersion.V4Only)
            if self._info is not None and self._info.name == info.name:
                await self._zc.async_update_service(info)
            else:
                if self._info is not None:
                    await self._zc.async_unregister_service(self._info)
                await self._zc.async_register_service(info, allow_name_change=True)
            self._info = info
        except Exception as e:  # mDNS is a convenience: typing an address always works
            log.warning("cannot advertise over mDNS (%s); the console can still connect "
                        "to a typed address", e)  # fmt: skip

    async def close(self) -> None:
        self._closed = True
        if self._zc is not None:
            try:
                await self._zc.async_unregister_all_services()
            finally:
                await self._zc.async_close()
            self._zc = None
