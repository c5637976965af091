"""Read and validate the cluster TOML file into a ``ClusterConfig``.

Every problem raises ``ConfigError`` naming the dotted key (``cluster.pulse_ms``,
``heartbeat[1].port`` (0-based), ``module.web.checker.port.kind``), the bad value and
what is allowed (DESIGN §7). Unknown keys are errors too: a typo must never silently
fall back to a default. Times are ``*_ms`` / ``*_s`` in the file, seconds in the model.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import posixpath
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from node_agent.config import model
from node_agent.config.alerts_section import parse_alerts
from node_agent.config.checks import check_cluster
from node_agent.config.model import (
    DEFAULT_WHEN,
    NODE_IDS,
    CheckerAction,
    CheckerKind,
    CheckerWhen,
    ClusterConfig,
)
from node_agent.config.table import (
    MISSING,
    NAME_RE,
    ConfigError,
    Table,
    abspath_value,
    bad,
    checked,
    host_value,
    hostport_value,
    ifname_value,
    ip_value,
    is_ip,
)

DEFAULT_STATE_DIR = "/var/lib/mirrorpair"  # the agent's own files: certificates, data
_TOML_POS_RE = re.compile(r"\(at line (\d+), column (\d+)\)")
MIN_SECRET_LEN = 16


_CLUSTER_KEYS = ["name", "version", "secret", "secret_file", "pulse_ms", "timeout_ms", "data_dir"]


def _cluster(t: Table, base_dir: Path | None, state_dir: str) -> dict[str, Any]:
    out: dict[str, Any] = {"name": t.name(), "version": t.integer("version", 1, lo=1)}
    if "secret" in t.data and "secret_file" in t.data:
        raise ConfigError(t.key("secret_file"), "give either secret or secret_file, not both")
    if "secret_file" in t.data:
        key = t.key("secret_file")
        path = Path(t.string("secret_file"))
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path  # relative to the config file, not the agent's cwd
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(key, f"cannot read secret file {str(path)!r}: {e}") from None
    elif "secret" in t.data:
        key, secret = t.key("secret"), t.get("secret")
        if not isinstance(secret, str):
            raise ConfigError(key, "must be a string")  # never echo secrets
    else:
        raise ConfigError(t.key("secret"), "is required (or give secret_file)")
    if len(secret) < MIN_SECRET_LEN:
        msg = f"must be at least {MIN_SECRET_LEN} characters, got {len(secret)} characters"
        raise ConfigError(key, msg)
    out["secret"] = secret.encode("utf-8")
    pulse = t.integer("pulse_ms", 500, lo=50, hi=10000)
    what = f"an integer between 3 * pulse_ms = {3 * pulse} and 600000"
    timeout = t.integer("timeout_ms", 3000, lo=3 * pulse, hi=600000, what=what)
    # Absent: under the agent's state directory (a configuration written by the console).
    data_dir = abspath_value(t.get("data_dir", f"{state_dir}/data"), t.key("data_dir"))
    out.update(pulse_s=pulse / 1000, timeout_s=timeout / 1000, data_dir=data_dir)
    return out


def _nodes(data: Any) -> dict[str, model.NodeConfig]:
    t = Table(data, "nodes", NODE_IDS)
    tables = {n: Table(t.get(n), t.key(n), ["api", "replication"]) for n in NODE_IDS}
    return {
        n: model.NodeConfig(
            n,
            hostport_value(x.get("api"), x.key("api")),
            hostport_value(x.get("replication"), x.key("replication"))
            if x.get("replication", None) is not None
            else "",
        )
        for n, x in tables.items()
    }


def _heartbeats(root: Table) -> tuple[model.HeartbeatNetwork, ...]:
    raw = root.tables("heartbeat")
    if not raw:
        raise ConfigError("heartbeat", "at least one [[heartbeat]] network is required")
    nets: list[model.HeartbeatNetwork] = []
    bound: dict[tuple[str, str, int], str] = {}
    for i, data in enumerate(raw):
        t = Table(data, f"heartbeat[{i}]", ["name", *NODE_IDS, "port"])
        name = t.name()
        if any(n.name == name for n in nets):
            raise ConfigError(t.key("name"), f'duplicate heartbeat network name "{name}"')
        addrs = {node: ip_value(t.get(node), t.key(node)) for node in NODE_IDS}
        if len({ipaddress.ip_address(a) for a in addrs.values()}) == 1:
            raise bad(t.key(NODE_IDS[1]), f"an address other than {NODE_IDS[0]}'s", addrs["node2"])
        port = t.integer("port", model.DEFAULT_HEARTBEAT_PORT, lo=1, hi=65535)
        for node, addr in addrs.items():  # one socket in two networks: one link counted twice
            other = bound.setdefault((node, addr, port), name)
            if other != name:
                msg = f'{node} {addr}:{port} is already used by heartbeat network "{other}"'
                raise ConfigError(t.key("port"), msg)
        nets.append(model.HeartbeatNetwork(name, addrs, port))
    return tuple(nets)


def _witness(data: Any) -> model.WitnessConfig:
    t = Table(data, "witness", ["ping", "tcp", "interval_ms", "timeout_ms"])
    ms = {k: t.integer(f"{k}_ms", 1000, lo=50, hi=600000) for k in ("interval", "timeout")}
    return model.WitnessConfig(
        t.items("ping", ip_value),
        t.items("tcp", hostport_value),
        ms["interval"] / 1000,
        ms["timeout"] / 1000,
    )


def _metrics(data: Any) -> model.MetricsConfig:
    """``[metrics] listen``: where the Prometheus endpoint listens ("" or absent: none)."""
    t = Table(data, "metrics", ["listen"])
    listen = t.string("listen", "", empty=True)
    return model.MetricsConfig(hostport_value(listen, t.key("listen")) if listen else "")


def _vip(data: Any, path: str) -> model.VipConfig:
    t = Table(data, path, ["address", "interface"])
    ok = lambda v: isinstance(v, str) and is_ip(v, prefix=True)  # noqa: E731
    address = t.want("address", MISSING, ok, 'an address with prefix length like "10.0.0.100/24"')
    iface = t.get("interface")
    if isinstance(iface, dict):
        it = Table(iface, t.key("interface"), NODE_IDS)
        ifaces = {n: ifname_value(it.get(n), it.key(n)) for n in NODE_IDS}
    elif isinstance(iface, str):
        ifaces = dict.fromkeys(NODE_IDS, ifname_value(iface, t.key("interface")))
    else:
        allowed = 'an interface name or a table {node1 = "eth0", node2 = "eth1"}'
        raise bad(t.key("interface"), allowed, iface)
    return model.VipConfig(str(ipaddress.ip_interface(address)), ifaces)


_CHECKER_TARGET: dict[CheckerKind, Callable[[Any, str], str]] = {
    CheckerKind.TCP: hostport_value,
    CheckerKind.PING: host_value,
    CheckerKind.INTERFACE: ifname_value,
    CheckerKind.COMMAND: checked(str.strip, "a non-empty command line"),
}


def _named(data: Any, base: str, index: int) -> str:
    """``module.web`` once the name is valid (errors read better), else ``module[0]``."""
    name = data.get("name") if isinstance(data, dict) else None
    ok = isinstance(name, str) and NAME_RE.fullmatch(name)
    return f"{base}.{name}" if ok else f"{base}[{index}]"


def _checker(data: Any, base: str, index: int) -> model.CheckerConfig:
    keys = ["name", "kind", "target", "interval_s", "timeout_s", "failures", "action", "when"]
    t = Table(data, _named(data, base, index), keys)
    name = t.name()
    kind = CheckerKind(t.choice("kind", [k.value for k in CheckerKind]))
    if kind in (CheckerKind.PROCESS, CheckerKind.HOST):
        target = t.string("target", "", empty=True)
        if target:
            raise bad(t.key("target"), f'empty for a "{kind.value}" checker (it asks the '
                      "module's resource)", target)  # fmt: skip
    else:
        target = _CHECKER_TARGET[kind](t.get("target"), t.key("target"))
    nums = {k: t.number(k, _CHECKER_DEFAULTS[k]) for k in ("interval_s", "timeout_s")}
    action = CheckerAction(t.choice("action", [a.value for a in CheckerAction], "restart"))
    failures = t.integer("failures", 1, lo=1)
    when = CheckerWhen(t.choice("when", [w.value for w in CheckerWhen], DEFAULT_WHEN[kind]))
    if kind is CheckerKind.PROCESS and when is not CheckerWhen.PRIMARY:
        raise bad(t.key("when"), '"primary" for a "process" checker (the process runs only '
                  "on the primary)", when.value)  # fmt: skip
    return model.CheckerConfig(
        name, kind, target, **nums, failures=failures, action=action, when=when
    )


# Defaults come from the model: one source of truth.
_CHECKER_DEFAULTS = {f.name: f.default for f in dataclasses.fields(model.CheckerConfig)}
_MODULE_DEFAULTS = {f.name: f.default for f in dataclasses.fields(model.ModuleConfig)}
_MODULE_NUMBERS = ("start_timeout_s", "stop_timeout_s", "check_timeout_s", "loop_interval_s")
_COMMANDS = ("start", "stop")
_MODULE_KEYS = [
    *("name", "kind", "preferred", *_COMMANDS, "check", *_MODULE_NUMBERS, "maxloop"),
    *("defaultprim", "autostart", "directories", "vip", "checker", "resync_mbps", "async"),
    "write_cache",
    "domain",
    "libvirt_uri",
    "guest_agent",
]


def _module(data: Any, index: int) -> model.ModuleConfig:
    t = Table(data, _named(data, "module", index), _MODULE_KEYS)
    name = t.name()
    kind = t.choice("kind", ["app", "vm"])
    if kind == "vm":
        for k in (*_COMMANDS, "check"):
            if k in t.data:
                msg = "is not used by a vm module: libvirt starts, stops and checks the domain"
                raise ConfigError(t.key(k), msg)
    else:
        for k in _VM_KEYS:
            if k in t.data:
                raise ConfigError(t.key(k), 'is only for kind = "vm" modules')
    cmd_default = MISSING if kind == "app" else ""  # an app needs start and stop
    checkers: list[model.CheckerConfig] = []
    for i, c in enumerate(t.tables("checker")):
        checker = _checker(c, t.key("checker"), i)
        if any(x.name == checker.name for x in checkers):
            key = f"{t.key('checker')}.{checker.name}.name"
            raise ConfigError(key, f'duplicate checker name "{checker.name}" in module "{name}"')
        checkers.append(checker)
    kw: dict[str, Any] = {k: t.string(k, cmd_default, empty=kind != "app") for k in _COMMANDS}
    kw |= {k: t.number(k, _MODULE_DEFAULTS[k]) for k in _MODULE_NUMBERS}
    kw |= {k: t.flag(k, _MODULE_DEFAULTS[k]) for k in ("defaultprim", "autostart")}
    # A VM's disks (cache='none') bypass the page cache anyway, but QEMU writes a UEFI
    # NVRAM with buffered writes it never flushes: with the cache, a crash would lose
    # what the guest was told is saved. Off by default for VMs.
    kw["write_cache"] = t.flag("write_cache", kind == "app")
    directories = t.items("directories", abspath_value)
    if kind == "vm":
        kw["vm"] = _vm(t, name, directories)
    return model.ModuleConfig(
        name,
        kind,
        preferred=t.choice("preferred", NODE_IDS, NODE_IDS[0]),
        check=t.string("check", "", empty=True),
        maxloop=t.integer("maxloop", 3, lo=0),
        vip=_vip(t.data["vip"], t.key("vip")) if "vip" in t.data else None,
        checkers=tuple(checkers),
        directories=directories,
        # 0 = unlimited; a cap keeps a resync from saturating a shared link.
        resync_mbps=t.number("resync_mbps", None) if "resync_mbps" in t.data else 0.0,
        async_mode=t.choice("async", ["sync", "second"], "sync"),
        **kw,
    )


_VM_KEYS = ("domain", "libvirt_uri", "guest_agent")


def _vm(t: Table, name: str, directories: tuple[str, ...]) -> model.VmConfig:
    """The domain XML and its disks live in the module's replicated directories."""
    if not directories:
        raise ConfigError(t.key("directories"), "a vm module needs its directory (where its "
                          "domain definition and disk images are) in directories")  # fmt: skip
    domain = t.string("domain", f"{name}.xml")
    path = posixpath.normpath(posixpath.join(directories[0], domain))
    inside = any(path.startswith(posixpath.normpath(d).rstrip("/") + "/") for d in directories)
    if not inside:
        raise ConfigError(t.key("domain"), f"{path} is outside the module's directories: the "
                          "definition must be replicated with the disks")  # fmt: skip
    uri = t.string("libvirt_uri", model.DEFAULT_LIBVIRT_URI)
    return model.VmConfig(path, uri, t.flag("guest_agent", False))


def _modules(root: Table) -> tuple[model.ModuleConfig, ...]:
    modules: list[model.ModuleConfig] = []
    for i, data in enumerate(root.tables("module")):
        m = _module(data, i)
        if any(x.name == m.name for x in modules):
            raise ConfigError(f"module.{m.name}.name", f'duplicate module name "{m.name}"')
        for other in modules:
            if m.vip and other.vip and m.vip.address == other.vip.address:
                msg = f'{m.vip.address} is already the VIP of module "{other.name}"'
                raise ConfigError(f"module.{m.name}.vip.address", msg)
        modules.append(m)
    return tuple(modules)


def _tls(root: Table, state_dir: str) -> model.TlsConfig:
    if "tls" not in root.data:  # the certificates the agent was given when it was paired
        return model.TlsConfig(**default_tls_files(state_dir))
    tls = Table(root.get("tls"), "tls", ["ca", "cert", "key"])  # {node} allowed in all
    return model.TlsConfig(**{k: tls.string(k) for k in ("ca", "cert", "key")})


def default_tls_files(state_dir: str) -> dict[str, str]:
    """Where pairing installs a node's CA, certificate and key (a config without [tls])."""
    tls = f"{state_dir.rstrip('/')}/tls"
    return {"ca": f"{tls}/ca.pem", "cert": f"{tls}/node.pem", "key": f"{tls}/node.key"}


def _build(
    doc: dict[str, Any], text: str, source: str, base_dir: Path | None, state_dir: str
) -> ClusterConfig:
    sections = ["cluster", "tls", "nodes", "heartbeat", "witness", "module", "alerts", "metrics"]
    root = Table(doc, "", sections)
    cluster = _cluster(Table(root.get("cluster"), "cluster", _CLUSTER_KEYS), base_dir, state_dir)
    cfg = ClusterConfig(
        **cluster,
        tls=_tls(root, state_dir),
        nodes=_nodes(root.get("nodes")),
        heartbeat=_heartbeats(root),
        witness=_witness(doc["witness"]) if "witness" in doc else model.WitnessConfig(),
        modules=_modules(root),
        alerts=parse_alerts(doc["alerts"]) if "alerts" in doc else model.AlertsConfig(),
        metrics=_metrics(doc["metrics"]) if "metrics" in doc else model.MetricsConfig(),
        source_text=text,
        source_path="" if source == "<string>" else source,
    )
    check_cluster(cfg)
    return cfg


def parse_config(
    text: str, source: str = "<string>", state_dir: str = DEFAULT_STATE_DIR
) -> ClusterConfig:
    """Parse and validate config TOML. ``source`` names the file in errors and the result;
    a relative ``secret_file`` is resolved against its directory. Without [tls] or
    ``cluster.data_dir`` the node's ``state_dir`` holds the certificates and the data."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = _TOML_POS_RE.search(str(e))
        line, col = (int(m[1]), int(m[2])) if m else (None, None)
        where = f" at line {line}, column {col}" if m else ""
        detail = f"malformed TOML{where}: {_TOML_POS_RE.sub('', str(e)).strip()}"
        raise ConfigError("", detail, source, line, col) from None
    base_dir = Path(source).parent if source != "<string>" else None
    try:
        return _build(doc, text, source, base_dir, state_dir)
    except ConfigError as e:
        raise ConfigError(e.key, e.detail, source, e.line, e.col) from None


def load_config(path: str | Path, state_dir: str = DEFAULT_STATE_DIR) -> ClusterConfig:
    """Read and validate the cluster config file at ``path`` (``state_dir``: see parse_config)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError("", f"cannot read config file: {e}", source=str(path)) from None
    return parse_config(text, source=str(path), state_dir=state_dir)
