"""What a server tells the setup wizard about itself: name, addresses, memory
(GetHostInfo), and the answers to its checks before a configuration is written
(ProbeHost: do these directories exist, does something answer at this address)."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from pathlib import Path

from pyroute2 import IPRoute

from protos import mirrorpair_pb2 as pb

PING_TIMEOUT_S = 1


def addresses() -> list[pb.NetworkAddress]:
    """The node's IPv4/IPv6 addresses, loopback and link-local left out. Blocking (and
    pyroute2 runs its own event loop): call it from a thread in async code."""
    out: list[pb.NetworkAddress] = []
    with IPRoute() as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        for msg in ipr.get_addr():
            addr = msg.get_attr("IFA_ADDRESS")
            if addr is None:
                continue
            ip = ipaddress.ip_address(addr)
            if ip.is_loopback or ip.is_link_local:
                continue
            out.append(
                pb.NetworkAddress(
                    interface=names.get(msg["index"], ""),
                    address=addr,
                    prefix_len=msg["prefixlen"],
                )  # fmt: skip
            )
    return out


def memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def hostname() -> str:
    return socket.gethostname()


def probe_path(path: str) -> pb.PathProbe:
    p = Path(path)
    if not p.is_absolute():
        return pb.PathProbe(path=path, error="not an absolute path")
    try:
        is_dir = p.is_dir()
        exists = is_dir or p.exists()
        empty = is_dir and not any(os.scandir(p))
    except OSError as e:
        return pb.PathProbe(path=path, exists=p.exists(), error=e.strerror or str(e))
    return pb.PathProbe(path=path, exists=exists, is_dir=is_dir, empty=empty)


async def probe_address(address: str, local: set[str]) -> pb.AddressProbe:
    """Whether ``address`` is held here or answers a ping from here."""
    ip = address.split("/")[0]
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        return pb.AddressProbe(address=address)
    if ip in local:
        return pb.AddressProbe(address=address, answers=True, local=True)
    proc = await asyncio.create_subprocess_exec(
        "ping", "-n", "-c", "1", "-W", str(PING_TIMEOUT_S), ip,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    return pb.AddressProbe(address=address, answers=await proc.wait() == 0)


async def probe(request: pb.ProbeHostRequest) -> pb.ProbeHostReply:
    local = {a.address for a in await asyncio.to_thread(addresses)}
    answers = await asyncio.gather(*(probe_address(a, local) for a in request.addresses))
    return pb.ProbeHostReply(paths=[probe_path(p) for p in request.paths], addresses=list(answers))
