"""Text and JSON output of the CLI (pure: statuses in, strings/dicts out)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from node_agent.config.model import NODE_IDS
from protos import mirrorpair_pb2 as pb

Result = pb.NodeStatus | Exception  # per node: its status, or why it did not answer

_READINESS = {
    pb.READINESS_NOT_READY: "not ready",
    pb.READINESS_TRANSIENT: "transient",
    pb.READINESS_READY: "ready",
}


def state_name(state: int) -> str:
    return pb.ModuleState.Name(state).removeprefix("STATE_") if state else "?"


def readiness_name(readiness: int) -> str:
    return _READINESS.get(readiness, "?")


def table(rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Left-aligned columns separated by two spaces; the first row is the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _links(status: pb.NodeStatus) -> str:
    if not status.links:
        return "-"
    return ", ".join(f"{link.name} {'up' if link.up else 'DOWN'}" for link in status.links)


def _seconds(s: float) -> str:
    """0.0404 -> "40 ms", 1.25 -> "1.25 s" (heartbeat timings)."""
    return f"{s * 1000:.0f} ms" if abs(s) < 1.0 else f"{s:.2f} s"


def _measured(link: pb.LinkStatus) -> bool:
    """The agent reports zeros until it has timing samples of the link."""
    timings = (link.gap_max_s, link.gap_p99_s, link.lateness_max_s, link.lateness_p99_s)
    return link.last_heard_age_s >= 0 and any(timings)


def link_timings(results: Mapping[str, Result]) -> list[str]:
    """Each heartbeat link as each node hears it: the gap between two pulses heard (what
    the peer timeout is compared with) and their lateness (received minus sent: two
    clocks, true only where they are synchronized). "-" where nothing is measured yet."""
    rows = [["NODE", "LINK", "STATE", "LAST HEARD", "GAP P99", "GAP MAX", "LATE P99", "LATE MAX"]]
    for node in NODE_IDS:
        res = results.get(node)
        for lk in res.links if isinstance(res, pb.NodeStatus) else ():
            heard = f"{_seconds(lk.last_heard_age_s)} ago" if lk.last_heard_age_s >= 0 else "never"
            times = [lk.gap_p99_s, lk.gap_max_s, lk.lateness_p99_s, lk.lateness_max_s]
            cells = [_seconds(t) for t in times] if _measured(lk) else ["-"] * 4
            rows.append([node, lk.name, "up" if lk.up else "DOWN", heard, *cells])
    if len(rows) == 1:
        return []
    head = "Heartbeat links  (gap: between pulses heard; late: received - sent, synced clocks)"
    return ["", head, *table(rows, "  ")]


def _witness(status: pb.NodeStatus) -> str:
    if not status.witness_configured:
        return "not configured"
    return "reachable" if status.witness_reachable else "UNREACHABLE"


def _flags(m: pb.ModuleStatus) -> str:
    flags = []
    if m.split_brain:
        flags.append("SPLIT-BRAIN")
    if m.degraded:
        flags.append("degraded")
    if m.resync.active:
        flags.append(f"resync {resync_text(m.resync)}")
    flags += [f"checker {c.name} failing" for c in m.checkers if not c.ok]
    if m.HasField("data_plane") and m.data_plane.pid == 0:
        flags.append("data plane down")
    return ", ".join(flags) or "-"


def resync_text(r: pb.ResyncProgress) -> str:
    pct = 100.0 * r.bytes_done / r.bytes_total if r.bytes_total else 0.0
    eta = f" ETA {r.eta_s:.0f}s" if r.eta_s > 0 else ""
    return f"{pct:.0f}%{eta}"


def module_names(results: Mapping[str, Result]) -> list[str]:
    """Every module known to any node that answered, in config order."""
    names: dict[str, None] = {}
    for node in NODE_IDS:
        res = results.get(node)
        if isinstance(res, pb.NodeStatus):
            names.update((m.name, None) for m in res.modules)
    return list(names)


def find_module(status: pb.NodeStatus, name: str) -> pb.ModuleStatus | None:
    return next((m for m in status.modules if m.name == name), None)


def _vip_line(name: str, results: Mapping[str, Result]) -> str:
    mods = {n: find_module(r, name) for n, r in results.items() if isinstance(r, pb.NodeStatus)}
    vip = next((m.vip for m in mods.values() if m is not None and m.vip), "")
    if not vip:
        return "no VIP"
    holders = [n for n in NODE_IDS if (m := mods.get(n)) is not None and m.vip_held]
    if not holders:
        return f"VIP {vip} not held"
    where = " AND ".join(holders) + (" (both!)" if len(holders) > 1 else "")
    return f"VIP {vip} held by {where}"


def render_status(
    results: Mapping[str, Result], addresses: Mapping[str, str], cluster: str = ""
) -> str:
    """The `mirrorpair status` text: nodes (links, witness), then one table per module."""
    first = next((r for r in results.values() if isinstance(r, pb.NodeStatus)), None)
    name = cluster or (first.cluster_name if first else "?")
    out = [f"Cluster {name}", ""]
    rows = [["NODE", "ADDRESS", "AGENT", "PEER", "LINKS", "WITNESS"]]
    errors = []
    for node in NODE_IDS:
        res = results.get(node)
        if isinstance(res, pb.NodeStatus):
            peer = "alive" if res.peer_alive else "NOT HEARD"
            if res.peer_alive and res.peer_leaving_s > 0:  # on its word, not heartbeats
                peer = f"agent restarting ({res.peer_leaving_s:.0f} s left)"
            rows.append(
                [
                    node,
                    addresses.get(node, res.api_address),
                    res.version or "?",
                    peer,
                    _links(res),
                    _witness(res),
                ]
            )
        else:
            rows.append([node, addresses.get(node, "?"), "ERROR", "", "", ""])
            errors.append(f"  {node}: ERROR {res}")
    out += table(rows) + errors
    versions = {n: r.config_version for n, r in results.items()
                if isinstance(r, pb.NodeStatus) and r.config_version}  # fmt: skip
    if len(set(versions.values())) > 1:  # a change applied to one node only: say so
        runs = ", ".join(f"{n} runs version {v}" for n, v in sorted(versions.items()))
        out.append(f"  CONFIGURATION MISMATCH: {runs}")
    for node in NODE_IDS:  # an upgrade in progress (or a refused peer): what each agent heard
        res = results.get(node)
        if isinstance(res, pb.NodeStatus) and res.version_mismatch:
            what = "PROTOCOL MISMATCH" if res.peer_incompatible else "VERSION MISMATCH"
            out.append(f"  {what} seen by {node}: {res.version_mismatch}")
    out += link_timings(results)
    for mod in module_names(results):
        out += ["", f"Module {mod}  ({_vip_line(mod, results)})"]
        rows = [["NODE", "STATE", "READINESS", "DATA", "FLAGS", "LAST RULE", "REASON"]]
        for node in NODE_IDS:
            res = results.get(node)
            m = find_module(res, mod) if isinstance(res, pb.NodeStatus) else None
            if not isinstance(res, pb.NodeStatus):
                rows.append([node, "ERROR", "", "", "", "", "agent not answering"])
            elif m is None:
                rows.append([node, "NOT CONFIGURED", "", "", "", "", ""])
            else:
                data = "uptodate" if m.uptodate else "not uptodate"
                rows.append(
                    [
                        node,
                        state_name(m.state),
                        readiness_name(m.readiness),
                        data,
                        _flags(m),
                        m.last_rule or "-",
                        m.reason or "-",
                    ]
                )
        out += table(rows, "  ")
    if first is not None and not module_names(results):
        out += ["", "No modules configured."]
    return "\n".join(out)


def status_document(
    results: Mapping[str, Result], addresses: Mapping[str, str], cluster: str = ""
) -> dict[str, Any]:
    """The `status --json` document: stable keys, every field present, plain values."""
    nodes: dict[str, Any] = {}
    for node in NODE_IDS:
        res = results.get(node)
        entry: dict[str, Any] = {"address": addresses.get(node, "")}
        if isinstance(res, pb.NodeStatus):
            entry |= {"reachable": True, "error": "", "status": message_dict(res)}
        else:
            entry |= {"reachable": False, "error": str(res), "status": None}
        nodes[node] = entry
    return {"cluster": cluster, "nodes": nodes, "modules": module_names(results)}


def message_dict(message: Message) -> dict[str, Any]:
    """Every field of ``message`` as plain JSON values: enums by their short name
    ("PRIM", "READY"; null when unspecified), 64-bit integers as numbers (protobuf's
    JSON mapping would quote them), nested messages as objects."""
    return {f.name: _field_value(f, getattr(message, f.name)) for f in message.DESCRIPTOR.fields}


def _field_value(f: FieldDescriptor, value: Any) -> Any:
    if f.is_repeated:
        return [_single(f, v) for v in value]
    return _single(f, value)


def _single(f: FieldDescriptor, value: Any) -> Any:
    if f.type == FieldDescriptor.TYPE_MESSAGE:
        return message_dict(value)
    if f.type == FieldDescriptor.TYPE_ENUM:
        return enum_name(f.enum_type, value)
    if f.type == FieldDescriptor.TYPE_BYTES:
        return value.hex()
    return value


def enum_name(enum: EnumDescriptor, value: int) -> str | None:
    """The value's name without the enum's prefix: STATE_PRIM -> "PRIM"; 0 -> None."""
    if value == 0:
        return None
    first = enum.values[0].name  # proto3 style: <PREFIX>_UNSPECIFIED = 0
    prefix = first.removesuffix("UNSPECIFIED") if first.endswith("_UNSPECIFIED") else ""
    known = enum.values_by_number.get(value)
    return known.name.removeprefix(prefix) if known is not None else str(value)


def merge_logs(per_node: Mapping[str, Iterable[pb.LogEntry]], limit: int = 0) -> list[pb.LogEntry]:
    """Entries of every node in time order (ties: node, then sequence); the newest ``limit``."""
    merged = sorted(
        (e for entries in per_node.values() for e in entries),
        key=lambda e: (e.time, e.node_id, e.seq),
    )
    return merged[-limit:] if limit > 0 else merged


def format_log_entry(e: pb.LogEntry) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.time))
    ms = int((e.time % 1) * 1000)
    where = f"{e.module}: " if e.module else ""
    extra = []
    old, new = state_name(e.old_state), state_name(e.new_state)
    if e.new_state and e.old_state != e.new_state and not (old in e.message and new in e.message):
        extra.append(f"{old} -> {new}")
    if e.cause and e.cause not in e.message:
        extra.append(f"cause {e.cause}")
    if e.who and e.who not in e.message:
        extra.append(f"by {e.who}")
    tail = f" [{'; '.join(extra)}]" if extra else ""
    return f"{stamp}.{ms:03d} {e.node_id or '?':5} {e.level or 'INFO':7} {where}{e.message}{tail}"
