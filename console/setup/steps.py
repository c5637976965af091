"""The flow's steps that ask the servers (through the backend) and the ones that turn its
answers into the configuration; ``SetupFlow``'s methods call these (split out of flow.py
to keep each file readable). Every failure is kept on the flow for its page to show."""

from __future__ import annotations

import copy
import ipaddress
import math
import posixpath
from dataclasses import replace
from typing import TYPE_CHECKING

from console.setup.backend import (
    FoundServer,
    HostFacts,
    PairingRefused,
    SetupBackend,
    SetupError,
    VmFacts,
)
from console.setup.cluster_toml import ClusterPlan, render
from console.setup.plan import NODE_IDS, ModulePlan, VipPlan, name_from, normalise_code

if TYPE_CHECKING:
    from console.setup.flow import SetupFlow


# ----- find servers -------------------------------------------------------------------------
async def discover(flow: SetupFlow, backend: SetupBackend, seconds: float) -> list[FoundServer]:
    try:
        found = await backend.discover(seconds)
    except SetupError as e:
        flow.discover_error = str(e)
        return []
    flow.discover_error = ""
    for s in found:
        _remember(flow, s)
    if not flow.chosen:  # a first look: the first two free servers, in the order found
        for s in found:
            if len(flow.chosen) < 2 and (not s.paired or s.pairing_open):
                flow.choose(s.address)
    return found


def _remember(flow: SetupFlow, server: FoundServer) -> None:
    for i, s in enumerate(flow.servers):
        if s.address == server.address:
            flow.servers[i] = server
            return
    flow.servers.append(server)


async def reach(flow: SetupFlow, backend: SetupBackend, address: str) -> FoundServer | None:
    try:
        server = await backend.reach(address)
    except SetupError as e:
        flow.reach_errors[address] = str(e)
        return None
    flow.reach_errors.pop(address, None)
    server = replace(server, source="typed")
    _remember(flow, server)
    flow.choose(server.address)
    return server


# ----- pair -----------------------------------------------------------------------------------
async def pair(flow: SetupFlow, backend: SetupBackend, node: str) -> HostFacts | None:
    address = flow.chosen.get(node)
    server = flow.server(address) if address else None
    if server is None:
        flow.pair_errors[node] = f"choose the server that becomes {node} first"
        return None
    code = normalise_code(flow.codes.get(node, ""))
    if code is None:
        flow.pair_errors[node] = "type the code the server printed, like 7KQ2-M9XD-4HTA"
        return None
    wait = flow.cooldown_left(node)
    if wait > 0:
        flow.pair_errors[node] = f"too many wrong codes: try again in {math.ceil(wait)} s"
        return None
    flow.codes[node] = code
    # The backend learns the cluster's name from the server it pairs: the name goes into
    # the node's pairing (BeginPairing's cluster_name) and names the cluster's CA.
    joining = replace(server, cluster_name=flow.cluster_name)
    try:
        facts = await backend.pair(joining, node, code)
    except PairingRefused as e:
        flow.pair_errors[node] = _refusal(flow, node, server, e)
        return None
    except SetupError as e:
        flow.pair_errors[node] = str(e)
        return None
    facts = facts if facts.node_id == node else replace(facts, node_id=node)
    flow.hosts[node] = facts
    for d in (flow.pair_errors, flow.attempts_left, flow.cooldown_until):
        d.pop(node, None)
    if len(flow.hosts) == 2:
        flow.networks = []  # proposed from these two when their page opens
    return facts


def _refusal(flow: SetupFlow, node: str, server: FoundServer, e: PairingRefused) -> str:
    if e.cooldown_s > 0:
        flow.cooldown_until[node] = flow.clock() + e.cooldown_s
        flow.attempts_left[node] = 0
        return f"{e}: try again in {math.ceil(e.cooldown_s)} s"
    if e.attempts_left > 0:
        flow.attempts_left[node] = e.attempts_left
        n = e.attempts_left
        return f"{e}: {n} attempt{'s' if n != 1 else ''} left"
    return (
        f"{e} — pairing is closed on {server.hostname}: reopen it on that server "
        "(mirrorpair-agent pairing open)"
    )


# ----- modules --------------------------------------------------------------------------------
async def load_vms(flow: SetupFlow, backend: SetupBackend, node: str) -> list[VmFacts]:
    try:
        vms = await backend.list_vms(node)
    except SetupError as e:
        flow.vm_errors[node] = str(e)
        flow.vms[node] = []
        return []
    flow.vm_errors.pop(node, None)
    flow.vms[node] = vms
    return vms


def vm_module(vm: VmFacts, name: str = "") -> ModulePlan:
    """A VM where it is (docs/vm-modules.md): its directory is the one holding its disks,
    preferred is the node that has it, its definition is ``DOMAIN.xml`` in the directory
    (what ``mirrorpair vm adopt`` writes)."""
    dirs = [posixpath.dirname(d.path) for d in vm.disks if d.path.startswith("/")]
    directory = posixpath.commonpath(dirs) if dirs else ""
    return ModulePlan(
        name=name.strip() or name_from(vm.domain),
        kind="vm",
        preferred=vm.node_id,
        directories=[directory] if directory else [],
        domain=f"{vm.domain}.xml",
        vm_domain=vm.domain,
    )


def definition_path(m: ModulePlan) -> str:
    """Where a vm module's definition must be: in its (first) directory."""
    if m.kind != "vm" or not m.directories:
        return ""
    return posixpath.join(m.directories[0], m.domain or f"{m.name}.xml")


async def probe_directories(flow: SetupFlow, backend: SetupBackend) -> None:
    """Each module's directories (and a VM's definition) on the node it prefers: the
    other node gets its copy through replication."""
    for node in NODE_IDS:
        wanted: list[str] = []
        for m in flow.modules:
            if m.preferred == node:
                wanted += [d for d in m.directories if d.startswith("/")]
                if definition_path(m):
                    wanted.append(definition_path(m))
        if not wanted:
            continue
        try:
            paths, _ = await backend.probe(node, sorted(set(wanted)), [])
        except SetupError as e:
            flow.probe_errors[node] = str(e)
            continue
        flow.probe_errors.pop(node, None)
        for p in paths:
            flow.paths[(node, posixpath.normpath(p.path))] = p


async def probe_vips(flow: SetupFlow, backend: SetupBackend) -> None:
    """Does something answer at each new VIP already? Asked from both nodes (each sees its
    own links). A VIP the running cluster holds answers, of course: not asked."""
    ips = sorted({ip for m in flow.modules if (ip := vip_ip(m)) and ip != flow.running_vip(m.name)})
    if not ips:
        return
    for node in NODE_IDS:
        try:
            _, addresses = await backend.probe(node, [], ips)
        except SetupError as e:
            flow.probe_errors[node] = str(e)
            continue
        flow.probe_errors.pop(node, None)
        for a in addresses:
            flow.addresses[(node, a.address)] = a


def vip_ip(m: ModulePlan) -> str:
    """The VIP's address without a prefix, in one spelling ("" none or invalid)."""
    if m.vip is None:
        return ""
    try:
        return str(ipaddress.ip_interface(m.vip.address.strip()).ip)
    except ValueError:
        return ""


# ----- review and apply -----------------------------------------------------------------------
def cluster_plan(flow: SetupFlow) -> ClusterPlan:
    modules = copy.deepcopy(flow.modules)
    for m, src in zip(modules, flow.modules, strict=True):
        if m.vip is not None:
            m.vip = VipPlan(flow.vip_address(src), dict(m.vip.interfaces))
    running = flow.running
    if running is not None:
        nodes, extra, tls = copy.deepcopy(running.nodes), dict(running.extra), running.tls
        sections = copy.deepcopy(running.sections)  # [alerts] etc.: not edited, kept
    else:
        nodes = {n: {"api": flow.hosts[n].address if n in flow.hosts else ""} for n in NODE_IDS}
        extra, tls, sections = {}, None, {}
    return ClusterPlan(
        name=flow.cluster_name,
        version=flow.version,
        secret=flow.secret,
        nodes=nodes,
        networks=[n for n in flow.networks if n.use],
        witness=flow.witness,
        modules=modules,
        pulse_ms=flow.pulse_ms,
        timeout_ms=flow.timeout_ms,
        extra=extra,
        tls=tls,
        sections=sections,
    )


def _module_line(flow: SetupFlow, m: ModulePlan) -> str:
    parts = [f"{m.name} ({'VM ' + m.vm_domain if m.vm_domain else m.kind}) on {m.preferred}"]
    parts.append(", ".join(m.directories) or "no directory")
    if m.vip is not None:
        ifaces = ", ".join(f"{n} {i}" for n, i in sorted(m.vip.interfaces.items()))
        parts.append(f"VIP {flow.vip_address(m)} ({ifaces})")
    implicit = "the domain's state, libvirt on the standby" if m.kind == "vm" else "none"
    parts.append("checkers: " + (", ".join(c.name for c in m.checkers) or implicit))
    return " — ".join(parts)


def changes(flow: SetupFlow) -> list[str]:
    """What an edit changes in the running configuration, module by module."""
    if flow.running is None:
        return []
    plan = cluster_plan(flow)
    old = {m.name: render(replace(plan, modules=[m])) for m in flow.running.modules}
    new = {m.name: render(replace(plan, modules=[m])) for m in plan.modules}
    out = [f"add module {n}" for n in new if n not in old]
    out += [f"remove module {n}" for n in old if n not in new]
    out += [f"change module {n}" for n in new if n in old and new[n] != old[n]]
    base = replace(plan, modules=[])
    if render(replace(base, version=0)) != render(
        replace(base, version=0, networks=flow.running.networks, witness=flow.running.witness)
    ):
        out.append("change heartbeat networks or witness")
    return out


def summary(flow: SetupFlow) -> list[str]:
    lines = [f"Cluster {flow.cluster_name}, configuration version {flow.version}"]
    for n in NODE_IDS:
        h = flow.hosts.get(n)
        lines.append(f"{n}: {h.hostname} ({h.address})" if h else f"{n}: not paired")
    nets = [n for n in flow.networks if n.use]
    lines.append(
        "Heartbeat networks: "
        + ", ".join(
            f"{n.name} ({n.addresses[NODE_IDS[0]]} ↔ {n.addresses[NODE_IDS[1]]})" for n in nets
        )
    )
    w = flow.witness
    lines.append("Witness: " + (", ".join([*w.ping, *w.tcp]) or "none"))
    lines.append(f"Modules: {len(flow.modules)}" if flow.modules else "Modules: none yet")
    lines += [f"  • {_module_line(flow, m)}" for m in flow.modules]
    if flow.running is not None:
        lines.append("Changes: " + ("; ".join(changes(flow)) or "none"))
    return lines


async def apply(flow: SetupFlow, backend: SetupBackend) -> bool:
    if flow.done:
        return True
    from console.setup.checks import check_before_apply  # the pages' checks, all of them

    problems = check_before_apply(flow)
    if problems:
        flow.apply_error = "Fix first: " + "; ".join(str(p) for p in problems)
        return False
    try:
        outcome = await backend.apply(flow.toml_text(), flow.expected_versions())
    except SetupError as e:
        flow.outcome, flow.apply_error = None, f"Nothing was changed: {e}"
        return False
    flow.outcome = outcome
    if outcome.applied:
        flow.apply_error = ""
        return True
    why = "; ".join(
        f"{n} ({_host(flow, n)}) refused: {r}" for n, r in sorted(outcome.refused.items())
    )
    flow.apply_error = f"Nothing was changed on either server. {why or 'Refused.'}"
    return False


def _host(flow: SetupFlow, node: str) -> str:
    h = flow.hosts.get(node)
    return h.hostname if h else "?"
