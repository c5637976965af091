"""The cluster TOML the wizard writes, and the running one it edits.

The text is written by hand (the standard library reads TOML but does not write it): a
few value types, keys in the order of resources/config/cluster.example.toml. A running
file is read into the same plan; keys the wizard does not edit (``[tls]``, ``data_dir``,
timeouts, ...) are kept as they were, so an edit changes only what the operator changed.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from typing import Any

from console.setup.plan import (
    NODE_IDS,
    CheckerPlan,
    ModulePlan,
    NetworkPlan,
    VipPlan,
    WitnessPlan,
)

DEFAULT_PULSE_MS = 500
DEFAULT_TIMEOUT_MS = 3000
MASKED_SECRET = "***"  # GetConfig's text: the agents keep their own secret on apply


class RunningConfigError(ValueError):
    """The running configuration given to edit cannot be read."""


@dataclass
class ClusterPlan:
    name: str
    version: int
    secret: str  # "" when the file names a secret_file (kept in ``extra``)
    nodes: dict[str, dict[str, Any]]  # node id -> {"api": ..., other keys kept}
    networks: list[NetworkPlan] = field(default_factory=list)
    witness: WitnessPlan = field(default_factory=WitnessPlan)
    modules: list[ModulePlan] = field(default_factory=list)
    pulse_ms: int = DEFAULT_PULSE_MS
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    extra: dict[str, Any] = field(default_factory=dict)  # other [cluster] keys kept
    tls: dict[str, Any] | None = None  # kept from a running file; None: the agent's default
    # Other top-level sections of a running file ([alerts], ...): the wizard does not edit
    # them, and an edit must not drop them.
    sections: dict[str, Any] = field(default_factory=dict)


# ----- writing --------------------------------------------------------------------------
def value(v: Any) -> str:
    """One TOML value. JSON's string escapes are valid TOML basic-string escapes."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"no TOML for {type(v).__name__}")


def key(k: str) -> str:
    bare = k and all(c.isascii() and (c.isalnum() or c in "_-") for c in k)
    return k if bare else json.dumps(k)


def _lines(items: dict[str, Any], indent: str = "") -> list[str]:
    return [f"{indent}{key(k)} = {value(v)}" for k, v in items.items() if v is not None]


def _module_lines(m: ModulePlan) -> list[str]:
    head: dict[str, Any] = {"name": m.name, "kind": m.kind, "preferred": m.preferred}
    if m.kind == "app":
        head |= {"start": m.start, "stop": m.stop, "check": m.check or None}
    head["directories"] = list(m.directories)
    if m.kind == "vm" and m.domain and m.domain != f"{m.name}.xml":
        head["domain"] = m.domain
    out = ["[[module]]", *_lines(head), *_lines(m.extra)]
    if m.vip is not None:
        names = set(m.vip.interfaces.values())
        iface: Any = names.pop() if len(names) == 1 else dict(sorted(m.vip.interfaces.items()))
        out += ["", "  [module.vip]", *_lines({"address": m.vip.address, "interface": iface}, "  ")]
    for c in m.checkers:
        body: dict[str, Any] = {"name": c.name, "kind": c.kind, "target": c.target or None}
        if c.action != "restart":
            body["action"] = c.action
        body["when"] = c.when or None
        out += ["", "  [[module.checker]]", *_lines(body, "  "), *_lines(c.extra, "  ")]
    return out


def render(plan: ClusterPlan) -> str:
    """The whole cluster file. Without ``[tls]`` and ``data_dir`` unless kept from a
    running file: the agents default them to what pairing installed."""
    cluster: dict[str, Any] = {"name": plan.name, "version": plan.version}
    if plan.secret:
        cluster["secret"] = plan.secret
    cluster |= {"pulse_ms": plan.pulse_ms, "timeout_ms": plan.timeout_ms} | plan.extra
    out = ["# MirrorPair cluster configuration, written by the console's setup wizard.", ""]
    out += ["[cluster]", *_lines(cluster), ""]
    if plan.tls is not None:
        out += ["[tls]", *_lines(plan.tls), ""]
    for node in NODE_IDS:
        out += [f"[nodes.{node}]", *_lines(plan.nodes[node]), ""]
    for net in plan.networks:
        body = {"name": net.name, **{n: net.addresses[n] for n in NODE_IDS}, "port": net.port}
        out += ["[[heartbeat]]", *_lines(body), ""]
    w = plan.witness
    if w.ping or w.tcp:
        body = {"ping": w.ping or None, "tcp": w.tcp or None, **w.extra}
        out += ["[witness]", *_lines(body), ""]
    for m in plan.modules:
        out += [*_module_lines(m), ""]
    for name, table in plan.sections.items():
        out += _table_lines(key(name), table)
    return "\n".join(out).rstrip("\n") + "\n"


def _table_lines(header: str, table: dict[str, Any], array: bool = False) -> list[str]:
    """A kept table as written: its values, then its sub-tables and arrays of tables."""

    def nested(v: Any) -> bool:
        return isinstance(v, dict) or (isinstance(v, list) and v and all(
            isinstance(x, dict) for x in v))  # fmt: skip

    out = [f"[[{header}]]" if array else f"[{header}]"]
    out += _lines({k: v for k, v in table.items() if not nested(v)}) + [""]
    for k, v in table.items():
        if isinstance(v, dict):
            out += _table_lines(f"{header}.{key(k)}", v)
        elif nested(v):
            for item in v:
                out += _table_lines(f"{header}.{key(k)}", item, array=True)
    return out


def with_agent_defaults(text: str, tls: dict[str, str], data_dir: str) -> str:
    """``text`` completed with a ``[tls]`` section and ``data_dir``, as an agent's loader
    fills them in from pairing: for tests that check the text with the agent's parser."""
    head, sep, rest = text.partition("[cluster]\n")
    if not sep:
        raise ValueError("no [cluster] section")
    tls_text = "\n".join(["[tls]", *_lines(dict(tls))]) + "\n\n"
    return f"{head}{sep}data_dir = {value(data_dir)}\n{rest}{tls_text}"


# ----- reading a running file ------------------------------------------------------------
def _pop(table: dict[str, Any], name: str, default: Any = None) -> Any:
    return table.pop(name, default)


def _table(doc: dict[str, Any], name: str) -> dict[str, Any]:
    t = doc.get(name, {})
    if not isinstance(t, dict):
        raise RunningConfigError(f"[{name}] is not a table")
    return dict(t)


def _checker(data: dict[str, Any]) -> CheckerPlan:
    d = dict(data)
    return CheckerPlan(
        str(_pop(d, "name", "")),
        str(_pop(d, "kind", "")),
        str(_pop(d, "target", "")),
        str(_pop(d, "action", "restart")),
        str(_pop(d, "when", "")),
        extra=d,
    )


def _vip(data: dict[str, Any]) -> VipPlan:
    iface = data.get("interface", "")
    ifaces = dict(iface) if isinstance(iface, dict) else dict.fromkeys(NODE_IDS, str(iface))
    return VipPlan(str(data.get("address", "")), ifaces)


def _module(data: dict[str, Any]) -> ModulePlan:
    d = dict(data)
    m = ModulePlan(str(_pop(d, "name", "")), str(_pop(d, "kind", "app")))
    m.preferred = str(_pop(d, "preferred", NODE_IDS[0]))
    m.directories = [str(x) for x in _pop(d, "directories", [])]
    m.start, m.stop = str(_pop(d, "start", "")), str(_pop(d, "stop", ""))
    m.check, m.domain = str(_pop(d, "check", "")), str(_pop(d, "domain", ""))
    vip = _pop(d, "vip")
    m.vip = _vip(vip) if isinstance(vip, dict) else None
    m.checkers = [_checker(c) for c in _pop(d, "checker", [])]
    m.extra = d
    return m


_EDITED = ("cluster", "tls", "nodes", "heartbeat", "witness", "module")


def parse_running(text: str) -> ClusterPlan:
    """A running cluster file (as GetConfig returns it, the secret masked) as a plan."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RunningConfigError(f"the running configuration is not valid TOML: {e}") from None
    cluster = _table(doc, "cluster")
    nodes_table = _table(doc, "nodes")
    try:
        plan = ClusterPlan(
            name=str(_pop(cluster, "name", "")),
            version=int(_pop(cluster, "version", 1)),
            secret=str(_pop(cluster, "secret", "")),
            nodes={n: dict(nodes_table.get(n, {})) for n in NODE_IDS},
            pulse_ms=int(_pop(cluster, "pulse_ms", DEFAULT_PULSE_MS)),
            timeout_ms=int(_pop(cluster, "timeout_ms", DEFAULT_TIMEOUT_MS)),
        )
        plan.extra = cluster
        plan.tls = _table(doc, "tls") if "tls" in doc else None
        for net in doc.get("heartbeat", []):
            addresses = {n: str(net.get(n, "")) for n in NODE_IDS}
            port = int(net.get("port", 7701))
            plan.networks.append(NetworkPlan(str(net.get("name", "")), addresses, port))
        witness = _table(doc, "witness")
        ping, tcp = witness.pop("ping", []), witness.pop("tcp", [])
        plan.witness = WitnessPlan([str(x) for x in ping], [str(x) for x in tcp], witness)
        plan.modules = [_module(m) for m in doc.get("module", [])]
        plan.sections = {k: v for k, v in doc.items() if k not in _EDITED and isinstance(v, dict)}
    except (TypeError, ValueError, AttributeError) as e:
        raise RunningConfigError(f"the running configuration cannot be edited: {e}") from None
    return plan
