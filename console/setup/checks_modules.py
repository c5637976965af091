"""What the modules and virtual IP pages refuse (split out of checks.py): names,
commands, directories (missing on the preferred node, nested in another module's),
checkers, and VIPs (outside the nodes' subnets, a node's own, taken twice, answering).
"""

from __future__ import annotations

import posixpath
from collections import Counter
from typing import TYPE_CHECKING

from console.setup.netplan import usable, vip_placement
from console.setup.plan import (
    CHECKER_ACTIONS,
    CHECKER_KINDS,
    CHECKER_WHENS,
    NAME_RULE,
    NODE_IDS,
    ModulePlan,
    Problem,
    checker_target_problem,
    is_abspath,
    valid_name,
)
from console.setup.steps import definition_path, vip_ip

if TYPE_CHECKING:
    from console.setup.flow import SetupFlow


def who(flow: SetupFlow, node: str) -> str:
    h = flow.hosts.get(node)
    return f"{node} ({h.hostname})" if h else node


# ----- modules ----------------------------------------------------------------------------
def _norm(path: str) -> str:
    return posixpath.normpath(path.strip())


def _inside(path: str, parent: str) -> bool:
    return parent == "/" or path.startswith(parent.rstrip("/") + "/")


def check_modules(flow: SetupFlow) -> list[Problem]:
    out: list[Problem] = []
    if not flow.modules:
        out.append(
            Problem(
                "modules",
                "no module yet: the cluster protects nothing until "
                "you add one (now, or later with Edit configuration…)",
                warning=True,
            )
        )
    names = Counter(m.name for m in flow.modules)
    seen: list[tuple[str, str]] = []  # (path, module)
    for m in flow.modules:
        field = f"module {m.name or '?'}"
        if not valid_name(m.name):
            out.append(Problem(field, f"name must be {NAME_RULE}"))
        elif names[m.name] > 1:
            out.append(Problem(field, f'the name "{m.name}" is used twice: rename one'))
        if m.preferred not in NODE_IDS:
            out.append(Problem(f"{field} preferred", "must be node1 or node2"))
        if m.kind == "app":
            for what in ("start", "stop"):
                if not getattr(m, what).strip():
                    out.append(Problem(f"{field} {what}", f"type the command that {what}s it"))
        elif m.kind != "vm":
            out.append(Problem(f"{field} kind", 'must be "vm" or "app"'))
        if not m.directories:
            what = "its disks and definition" if m.kind == "vm" else "its data"
            out.append(Problem(f"{field} directories", f"add the directory that holds {what}"))
        for d in m.directories:
            out += _directory(flow, m, d, seen)
        out += _vm_facts(flow, m)
        out += _checkers(m)
    return out


def _directory(
    flow: SetupFlow, m: ModulePlan, d: str, seen: list[tuple[str, str]]
) -> list[Problem]:
    field = f"module {m.name} directory {d}"
    if not is_abspath(d.strip()):
        return [Problem(field, "must be an absolute path like /srv/vms/recorder")]
    path = _norm(d)
    if path == "/":
        return [Problem(field, "must not be / (a module replicates its own directory)")]
    out: list[Problem] = []
    for other, owner in seen:
        owner_text = "this module" if owner == m.name else f"module {owner}"
        if path == other:
            out.append(
                Problem(
                    field,
                    f"is already a directory of {owner_text}: each directory "
                    "belongs to one module (give each VM its own directory)",
                )
            )
        elif _inside(path, other) or _inside(other, path):
            inner, outer = (path, other) if _inside(path, other) else (other, path)
            out.append(
                Problem(
                    field,
                    f"{inner} lies inside {outer} ({owner_text}): replicated "
                    "directories must not be nested",
                )
            )
    seen.append((path, m.name))
    facts = flow.paths.get((m.preferred, path))
    if facts is not None:
        where = who(flow, m.preferred)
        if facts.error:
            out.append(Problem(field, f"cannot be checked on {where}: {facts.error}"))
        elif not facts.exists:
            out.append(
                Problem(field, f"does not exist on {where}: create it there or correct the path")
            )
        elif not facts.is_dir:
            out.append(Problem(field, f"is not a directory on {where}"))
    return out


def _vm_facts(flow: SetupFlow, m: ModulePlan) -> list[Problem]:
    out: list[Problem] = []
    if m.preferred in flow.probe_errors:
        err = flow.probe_errors[m.preferred]
        out.append(Problem(f"module {m.name}", f"could not be checked on {m.preferred}: {err}"))
    if m.kind != "vm":
        return out
    for vm in flow.vms.get(m.preferred, []):
        if vm.domain == m.vm_domain and vm.module and vm.module != m.name:
            out.append(
                Problem(
                    f"module {m.name}",
                    f"the VM {vm.domain} is already protected by module {vm.module}",
                )
            )
    xml = definition_path(m)
    facts = flow.paths.get((m.preferred, _norm(xml))) if xml else None
    if facts is not None and not facts.exists and not facts.error:
        out.append(
            Problem(
                f"module {m.name}",
                f"{xml} does not exist yet: the VM must be "
                f"adopted into its directory before it can start (mirrorpair vm adopt "
                f"{m.vm_domain or m.name})",
                warning=True,
            )
        )
    return out


def _checkers(m: ModulePlan) -> list[Problem]:
    out: list[Problem] = []
    names = Counter(c.name for c in m.checkers)
    for c in m.checkers:
        field = f"module {m.name} checker {c.name or '?'}"
        if not valid_name(c.name):
            out.append(Problem(field, f"name must be {NAME_RULE}"))
        elif names[c.name] > 1:
            out.append(Problem(field, "the name is used twice in this module"))
        if c.kind not in CHECKER_KINDS:
            out.append(Problem(field, "kind must be one of " + ", ".join(CHECKER_KINDS)))
            continue
        if why := checker_target_problem(c.kind, c.target):
            out.append(Problem(f"{field} target", why))
        if c.action not in CHECKER_ACTIONS:
            out.append(Problem(f"{field} action", "must be one of " + ", ".join(CHECKER_ACTIONS)))
        if c.when and c.when not in CHECKER_WHENS:
            out.append(Problem(f"{field} when", "must be one of " + ", ".join(CHECKER_WHENS)))
        elif c.kind == "process" and c.when not in ("", "primary"):
            out.append(
                Problem(f"{field} when", 'must be "primary": the process runs only on the primary')
            )
    return out


# ----- virtual IP -------------------------------------------------------------------------
def check_vips(flow: SetupFlow) -> list[Problem]:
    out: list[Problem] = []
    taken: dict[str, str] = {}
    node_ips = {str(i.ip): n for n in NODE_IDS if n in flow.hosts for _, i in usable(flow.hosts[n])}
    for m in flow.modules:
        if m.vip is None:
            continue
        field = f"module {m.name} VIP"
        ip = vip_ip(m)
        if not ip:
            out.append(Problem(field, "must be an IP address like 10.0.0.100 (or 10.0.0.100/24)"))
            continue
        iface, ifaces = vip_placement(flow.hosts, m.vip.address)
        if ip in node_ips:
            out.append(
                Problem(
                    field,
                    f"{ip} is {who(flow, node_ips[ip])}'s own address: a "
                    "VIP must be a free address (it moves between the servers)",
                )
            )
            continue
        if ip in taken:
            out.append(Problem(field, f"{ip} is already the VIP of module {taken[ip]}"))
            continue
        taken[ip] = m.name
        missing = [n for n in NODE_IDS if n not in ifaces]
        if missing and ip != flow.running_vip(m.name):
            subnets = ", ".join(
                f"{a.interface} {i.network}"
                for n in missing
                if n in flow.hosts
                for a, i in usable(flow.hosts[n])
            )
            out.append(
                Problem(
                    field,
                    f"{ip} is in no subnet of {who(flow, missing[0])} "
                    f"(its subnets: {subnets or 'none'}): choose an address on a "
                    "network both servers are on",
                )
            )
            continue
        if (
            iface is not None
            and iface.version == 4
            and iface.network.prefixlen < 31
            and ip in (str(iface.network.network_address), str(iface.network.broadcast_address))
        ):
            out.append(Problem(field, f"{ip} is the subnet's network or broadcast address"))
            continue
        out += _answering(flow, m, field, ip)
    return out


def _answering(flow: SetupFlow, m: ModulePlan, field: str, ip: str) -> list[Problem]:
    if ip == flow.running_vip(m.name):
        return []  # the running cluster holds it: of course it answers
    for node in NODE_IDS:
        facts = flow.addresses.get((node, ip))
        if facts is None:
            continue
        if facts.local:
            return [
                Problem(field, f"{ip} is already held by {who(flow, node)}: choose a free address")
            ]
        if facts.answers:
            return [
                Problem(
                    field,
                    f"{ip} already answers (seen from {who(flow, node)}): "
                    "another machine uses it; choose a free address",
                )
            ]
    return []
