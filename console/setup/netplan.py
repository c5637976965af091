"""Subnets of the two servers: heartbeat networks proposed from the addresses both nodes
have in one subnet, and the interface a virtual IP goes on, on each node."""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Interface, IPv6Interface

from console.setup.backend import HostFacts, NetAddress
from console.setup.plan import DEFAULT_HEARTBEAT_PORT, NODE_IDS, NetworkPlan, name_from

Interface = IPv4Interface | IPv6Interface


def interface_of(a: NetAddress) -> Interface | None:
    try:
        return ipaddress.ip_interface(f"{a.address}/{a.prefix_len}")
    except ValueError:
        return None


def usable(host: HostFacts) -> list[tuple[NetAddress, Interface]]:
    """A node's addresses another machine can reach: loopback and link-local are left
    out (a heartbeat or a VIP there would never leave the server)."""
    out = []
    for a in host.addresses:
        iface = interface_of(a)
        if iface is not None and not (iface.ip.is_loopback or iface.ip.is_link_local):
            out.append((a, iface))
    return out


def owned(host: HostFacts, address: str) -> NetAddress | None:
    """The node's own address ``address`` (any spelling of the same IP), or None."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    for a, iface in usable(host):
        if iface.ip == ip:
            return a
    return None


def same_subnet(h1: HostFacts, a1: str, h2: HostFacts, a2: str) -> bool:
    """Both ends on one link: each address inside the other's subnet as its node sees it."""
    n1, n2 = owned(h1, a1), owned(h2, a2)
    if n1 is None or n2 is None:
        return False
    i1, i2 = interface_of(n1), interface_of(n2)
    assert i1 is not None and i2 is not None
    return i1.ip in i2.network and i2.ip in i1.network


def propose_networks(hosts: dict[str, HostFacts]) -> list[NetworkPlan]:
    """One heartbeat network per subnet both nodes have an address in, named after the
    interfaces (``eth1``, or ``eth1-eno2`` when their names differ)."""
    h1, h2 = hosts[NODE_IDS[0]], hosts[NODE_IDS[1]]
    out: list[NetworkPlan] = []
    seen_subnets: set[str] = set()
    for a1, i1 in usable(h1):
        for a2, i2 in usable(h2):
            if i1.ip == i2.ip or not (i1.ip in i2.network and i2.ip in i1.network):
                continue
            if str(i1.network) in seen_subnets:
                continue  # two addresses on one link: one network is enough
            seen_subnets.add(str(i1.network))
            base = (
                a1.interface if a1.interface == a2.interface else f"{a1.interface}-{a2.interface}"
            )
            name, n = name_from(base), 2
            while any(p.name == name for p in out):
                name, n = f"{name_from(base)}-{n}", n + 1
            addresses = {NODE_IDS[0]: a1.address, NODE_IDS[1]: a2.address}
            out.append(NetworkPlan(name, addresses, DEFAULT_HEARTBEAT_PORT))
    return out


def vip_placement(
    hosts: dict[str, HostFacts], address: str
) -> tuple[Interface | None, dict[str, str]]:
    """Where a VIP typed as ``address`` ("10.0.0.100" or "10.0.0.100/24") goes: the VIP
    with its prefix (the node subnet's when none was typed) and, per node, the interface
    of that node's address in its subnet. Nodes without such an address are missing."""
    text = address.strip()
    try:
        typed = ipaddress.ip_interface(text)
    except ValueError:
        return None, {}
    ifaces: dict[str, str] = {}
    prefix: int | None = typed.network.prefixlen if "/" in text else None
    for node in NODE_IDS:
        host = hosts.get(node)
        if host is None:
            continue
        for a, iface in usable(host):
            if typed.ip in iface.network:
                ifaces[node] = a.interface
                if prefix is None:
                    prefix = iface.network.prefixlen
                break
    if prefix is None:
        return None, ifaces
    return ipaddress.ip_interface(f"{typed.ip}/{prefix}"), ifaces
