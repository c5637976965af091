"""What each wizard page refuses (issue 12, point 7), from the flow's answers and what the
servers said. Pure: no server is asked here; the flow's ``validate`` asks first.

A problem names the field as the page shows it and says what to do. Warnings (one
heartbeat network, a VM not adopted yet) are shown but let the operator go on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from console.setup.checks_modules import check_modules, check_vips, who
from console.setup.netplan import owned, same_subnet, usable
from console.setup.plan import (
    NAME_RULE,
    NODE_IDS,
    Problem,
    blocking,
    is_ip,
    normalise_code,
    split_hostport,
    valid_name,
)

if TYPE_CHECKING:
    from console.setup.flow import Page, SetupFlow


def check_page(flow: SetupFlow, page: Page) -> list[Problem]:
    return _CHECKS[page.value](flow)


def check_before_apply(flow: SetupFlow) -> list[Problem]:
    """Every blocking problem of the pages before the review (the review shows them)."""
    out: list[Problem] = []
    for page in flow.pages():
        if page.value in ("review", "apply"):
            break
        out += blocking(check_page(flow, page))
    return out


# ----- find servers -----------------------------------------------------------------------
def _find(flow: SetupFlow) -> list[Problem]:
    out = [Problem(f"address {a}", e, warning=True) for a, e in flow.reach_errors.items()]
    if flow.discover_error:
        out.append(Problem("discovery", flow.discover_error, warning=True))
    if not flow.cluster_name.strip():
        out.append(Problem("cluster name", "type a name for the new cluster"))
    elif not valid_name(flow.cluster_name):
        out.append(Problem("cluster name", f"must be {NAME_RULE}"))
    if len(flow.chosen) < 2:
        n = len(flow.servers)
        out.append(
            Problem(
                "servers",
                f"choose two servers ({n} found; type an address to add one that was not found)",
            )
        )
    servers = {node: flow.server(a) for node, a in flow.chosen.items()}
    prints = [s.fingerprint for s in servers.values() if s is not None and s.fingerprint]
    if len(prints) == 2 and prints[0] == prints[1]:
        out.append(
            Problem(
                "servers",
                "node1 and node2 are the same server reached at two addresses: choose another one",
            )
        )
    for node, s in sorted(servers.items()):
        if s is None:
            continue
        field = f"{node} ({s.hostname})"
        if s.paired and not s.pairing_open:
            other = f' "{s.cluster_name}"' if s.cluster_name else ""
            out.append(
                Problem(
                    field,
                    f"is already paired to cluster{other}: reopen pairing on "
                    "that server (mirrorpair-agent pairing open) or choose another",
                )
            )
        elif s.paired:
            out.append(
                Problem(
                    field,
                    f'is paired to cluster "{s.cluster_name}"; pairing it '
                    "again moves it to this cluster",
                    warning=True,
                )
            )
        elif not s.pairing_open:
            out.append(
                Problem(
                    field,
                    "does not accept pairing: reopen it on that server "
                    "(mirrorpair-agent pairing open)",
                )
            )
    return out


# ----- pair -------------------------------------------------------------------------------
def _pair(flow: SetupFlow) -> list[Problem]:
    out: list[Problem] = []
    for node in NODE_IDS:
        if node in flow.hosts:
            continue
        s = flow.server(flow.chosen.get(node, ""))
        field = f"{node} code"
        code = flow.codes.get(node, "").strip()
        if node in flow.pair_errors:
            out.append(Problem(field, flow.pair_errors[node]))
        elif not code:
            host = s.hostname if s else "the server"
            out.append(Problem(field, f"type the pairing code {host} printed at install"))
        elif normalise_code(code) is None:
            out.append(Problem(field, "a code is 12 letters and digits, like 7KQ2-M9XD-4HTA"))
        else:
            out.append(Problem(node, "not paired yet: Next pairs it with this code"))
    return out


# ----- heartbeat networks -----------------------------------------------------------------
def _networks(flow: SetupFlow) -> list[Problem]:
    used = [n for n in flow.networks if n.use]
    if not used:
        return [
            Problem(
                "heartbeat networks",
                "choose at least one network both servers are "
                "on (two or more on separate links are recommended)",
            )
        ]
    out: list[Problem] = []
    if len(used) == 1:
        out.append(
            Problem(
                "heartbeat networks",
                "only one network: a broken cable or switch "
                "would look like a dead server; two or more on separate links are "
                "recommended",
                warning=True,
            )
        )
    names = Counter(n.name for n in used)
    bound: dict[tuple[str, str, int], str] = {}
    for i, net in enumerate(used):
        field = f"network {net.name or i + 1}"
        if not valid_name(net.name):
            out.append(Problem(field, f"name must be {NAME_RULE}"))
        elif names[net.name] > 1:
            out.append(Problem(field, f'the name "{net.name}" is used twice: rename one'))
        if not 1 <= net.port <= 65535:
            out.append(Problem(f"{field} port", "must be between 1 and 65535"))
        ok = True
        for node in NODE_IDS:
            addr = net.addresses.get(node, "").strip()
            host = flow.hosts.get(node)
            if not is_ip(addr):
                out.append(Problem(f"{field} {node}", "must be an IP address like 10.0.0.1"))
                ok = False
            elif host is not None and owned(host, addr) is None:
                mine = ", ".join(a.address for a, _ in usable(host)) or "none"
                out.append(
                    Problem(
                        f"{field} {node}",
                        f"{addr} is not an address of {who(flow, node)}; its addresses: {mine}",
                    )
                )
                ok = False
            else:
                other = bound.setdefault((node, addr, net.port), net.name)
                if other != net.name:
                    out.append(
                        Problem(
                            f"{field} {node}",
                            f'{addr}:{net.port} is already used by network "{other}"',
                        )
                    )
        a1, a2 = (net.addresses.get(n, "") for n in NODE_IDS)
        if ok and len(flow.hosts) == 2:
            h1, h2 = flow.hosts[NODE_IDS[0]], flow.hosts[NODE_IDS[1]]
            if not same_subnet(h1, a1, h2, a2):
                out.append(
                    Problem(
                        field,
                        f"{a1} and {a2} are not in one subnet: choose the "
                        "two servers' addresses on the same link",
                    )
                )
    return out


# ----- witness ----------------------------------------------------------------------------
def _witness(flow: SetupFlow) -> list[Problem]:
    out: list[Problem] = []
    w = flow.witness
    for kind, items, ok, rule in (
        ("ping", w.ping, is_ip, "must be an IP address like 10.0.0.254"),
        ("tcp", w.tcp, split_hostport, "must be host:port like 10.0.0.254:80"),
    ):
        counts = Counter(x.strip() for x in items)
        for x in items:
            if not ok(x.strip()):
                out.append(Problem(f"witness {kind} {x!r}", rule))
            elif counts[x.strip()] > 1:
                out.append(Problem(f"witness {kind} {x}", "is listed twice"))
    return out


# ----- review and apply -------------------------------------------------------------------
def _review(flow: SetupFlow) -> list[Problem]:
    return check_before_apply(flow)


def _apply(flow: SetupFlow) -> list[Problem]:
    if flow.done or not flow.apply_error:
        return []
    refused = flow.outcome.refused if flow.outcome is not None else {}
    if refused:
        return [Problem(who(flow, n), f"refused: {why}") for n, why in sorted(refused.items())]
    return [Problem("apply", flow.apply_error)]


_CHECKS: dict[str, Callable[[SetupFlow], list[Problem]]] = {
    "find": _find,
    "pair": _pair,
    "networks": _networks,
    "witness": _witness,
    "modules": check_modules,
    "vip": check_vips,
    "review": _review,
    "apply": _apply,
}
