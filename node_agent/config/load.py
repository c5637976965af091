"""Read and validate the cluster TOML file into a ``ClusterConfig``.

Every problem raises ``ConfigError`` naming the dotted key (``cluster.pulse_ms``,
``heartbeat[1].port`` (0-based), ``module.web.checker.port.kind``), the bad value and
what is allowed (DESIGN §7). Unknown keys are errors too: a typo must never silently
fall back to a default. Times are ``*_ms`` / ``*_s`` in the file, seconds in the model.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import re
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from node_agent.config import model
from node_agent.config.model import NODE_IDS, CheckerAction, CheckerKind, ClusterConfig

_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOST_RE = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*")
_IFNAME_RE = re.compile(r"[^\s/]{1,15}")
_TOML_POS_RE = re.compile(r"\(at line (\d+), column (\d+)\)")
_MISSING: Any = object()
MIN_SECRET_LEN = 16


class ConfigError(ValueError):
    """An invalid config. ``key`` is the dotted path ("" for file-level problems)."""

    def __init__(self, key: str, detail: str, source: str = "", line: int | None = None,
                 col: int | None = None) -> None:  # fmt: skip
        self.key, self.detail, self.source, self.line, self.col = key, detail, source, line, col
        msg = f"config error at {key}: {detail}" if key else f"config error: {detail}"
        if source and source != "<string>":
            msg = f"{source}: {msg}"
        super().__init__(msg)


def _show(value: Any) -> str:
    """A value as the user wrote it in TOML (strings quoted, true/false, short arrays)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, str | list):
        text = json.dumps(value, ensure_ascii=False, default=str)
        return text if len(text) <= 80 else text[:77] + "..."
    return str(value)


def _bad(key: str, allowed: str, value: Any) -> ConfigError:
    return ConfigError(key, f"must be {allowed}, got {_show(value)}")


class _Table:
    """A TOML table being read: knows its dotted path and rejects unknown keys at once."""

    def __init__(self, data: Any, path: str, allowed: Iterable[str]) -> None:
        if not isinstance(data, dict):
            raise _bad(path, "a table", data)
        self.data: dict[str, Any] = data
        self.path = path
        allowed = list(allowed)
        for k in data:
            if k not in allowed:
                hint = difflib.get_close_matches(k, allowed, n=1)
                tip = f' (did you mean "{hint[0]}"?)' if hint else ""
                allowed_text = ", ".join(allowed)
                raise ConfigError(self.key(k), f'unknown key "{k}"; allowed: {allowed_text}{tip}')

    def key(self, k: str) -> str:
        return f"{self.path}.{k}" if self.path else k

    def get(self, k: str, default: Any = _MISSING) -> Any:
        if k in self.data:
            return self.data[k]
        if default is _MISSING:
            raise ConfigError(self.key(k), "is required")
        return default

    def want(self, k: str, default: Any, ok: Callable[[Any], Any], allowed: str) -> Any:
        v = self.get(k, default)
        if not ok(v):
            raise _bad(self.key(k), allowed, v)
        return v

    def string(self, k: str, default: Any = _MISSING, *, empty: bool = False) -> str:
        if empty:
            return self.want(k, default, lambda v: isinstance(v, str), "a string")
        return self.want(
            k, default, lambda v: isinstance(v, str) and v.strip(), "a non-empty string"
        )

    def name(self, k: str = "name") -> str:
        ok = lambda v: isinstance(v, str) and _NAME_RE.fullmatch(v)  # noqa: E731
        return self.want(k, _MISSING, ok, "1 to 64 characters from A-Z a-z 0-9 _ . -")

    def integer(
        self, k: str, default: Any = _MISSING, lo: int = 0, hi: int | None = None, what: str = ""
    ) -> int:
        v = self.get(k, default)
        ok = isinstance(v, int) and not isinstance(v, bool) and v >= lo and (hi is None or v <= hi)
        if not ok:
            rng = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
            raise _bad(self.key(k), what or f"an integer {rng}", v)
        return v

    def number(self, k: str, default: Any = _MISSING) -> float:
        ok = lambda v: type(v) in (int, float) and 0 < v < float("inf")  # noqa: E731
        return float(self.want(k, default, ok, "a number > 0"))

    def flag(self, k: str, default: Any = _MISSING) -> bool:
        return self.want(k, default, lambda v: isinstance(v, bool), "true or false")

    def choice(self, k: str, choices: Iterable[str], default: Any = _MISSING) -> str:
        v = self.get(k, default)
        choices = list(choices)
        if v not in choices:
            raise _bad(self.key(k), "one of " + ", ".join(f'"{c}"' for c in choices), v)
        return v

    def items(self, k: str, item: Callable[[Any, str], str]) -> tuple[str, ...]:
        v = self.get(k, [])
        if not isinstance(v, list):
            raise _bad(self.key(k), "an array", v)
        return tuple(item(x, f"{self.key(k)}[{i}]") for i, x in enumerate(v))

    def tables(self, k: str) -> list[Any]:
        v = self.get(k, [])
        if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
            raise _bad(self.key(k), f"an array of tables ([[{k}]] sections)", v)
        return v


def _is_ip(text: str, prefix: bool = False) -> bool:
    """An IP address; with ``prefix`` an address with a prefix length ("10.0.0.1/24")."""
    try:
        if prefix:
            return "/" in text and bool(ipaddress.ip_interface(text))
        return bool(ipaddress.ip_address(text))
    except ValueError:
        return False


def _checked(ok: Callable[[str], Any], allowed: str) -> Callable[[Any, str], str]:
    """A value checker for strings: returns the value or raises naming the key."""

    def check(value: Any, key: str) -> str:
        if not isinstance(value, str) or not ok(value):
            raise _bad(key, allowed, value)
        return value

    return check


_ip = _checked(_is_ip, "an IP address like 10.0.0.1")
_host = _checked(lambda v: _is_ip(v) or _HOST_RE.fullmatch(v), "an IP address or host name")
_abspath = _checked(lambda v: PurePosixPath(v).is_absolute(), "an absolute path")
_ifname = _checked(
    lambda v: _IFNAME_RE.fullmatch(v) and v not in (".", ".."),
    "a network interface name (1-15 characters, no spaces or /)",
)


def _is_hostport(text: str) -> bool:
    host, _, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):  # IPv6 literal
        valid_host = ":" in host and _is_ip(host[1:-1])
    else:
        valid_host = ":" not in host and bool(_is_ip(host) or _HOST_RE.fullmatch(host))
    return valid_host and port.isascii() and port.isdigit() and 1 <= int(port) <= 65535


_hostport = _checked(
    _is_hostport, 'host:port with port 1..65535 (e.g. "10.0.0.1:7700", "[fd00::1]:7700")'
)


_CLUSTER_KEYS = ["name", "version", "secret", "secret_file", "pulse_ms", "timeout_ms", "data_dir"]


def _cluster(t: _Table, base_dir: Path | None) -> dict[str, Any]:
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
    out.update(pulse_s=pulse / 1000, timeout_s=timeout / 1000, data_dir=t.string("data_dir"))
    return out


def _nodes(data: Any) -> dict[str, model.NodeConfig]:
    t = _Table(data, "nodes", NODE_IDS)
    tables = {n: _Table(t.get(n), t.key(n), ["api", "replication"]) for n in NODE_IDS}
    return {
        n: model.NodeConfig(
            n,
            _hostport(x.get("api"), x.key("api")),
            _hostport(x.get("replication"), x.key("replication"))
            if x.get("replication", None) is not None
            else "",
        )
        for n, x in tables.items()
    }


def _heartbeats(root: _Table) -> tuple[model.HeartbeatNetwork, ...]:
    raw = root.tables("heartbeat")
    if not raw:
        raise ConfigError("heartbeat", "at least one [[heartbeat]] network is required")
    nets: list[model.HeartbeatNetwork] = []
    bound: dict[tuple[str, str, int], str] = {}
    for i, data in enumerate(raw):
        t = _Table(data, f"heartbeat[{i}]", ["name", *NODE_IDS, "port"])
        name = t.name()
        if any(n.name == name for n in nets):
            raise ConfigError(t.key("name"), f'duplicate heartbeat network name "{name}"')
        addrs = {node: _ip(t.get(node), t.key(node)) for node in NODE_IDS}
        if len({ipaddress.ip_address(a) for a in addrs.values()}) == 1:
            raise _bad(t.key(NODE_IDS[1]), f"an address other than {NODE_IDS[0]}'s", addrs["node2"])
        port = t.integer("port", 7701, lo=1, hi=65535)
        for node, addr in addrs.items():  # one socket in two networks: one link counted twice
            other = bound.setdefault((node, addr, port), name)
            if other != name:
                msg = f'{node} {addr}:{port} is already used by heartbeat network "{other}"'
                raise ConfigError(t.key("port"), msg)
        nets.append(model.HeartbeatNetwork(name, addrs, port))
    return tuple(nets)


def _witness(data: Any) -> model.WitnessConfig:
    t = _Table(data, "witness", ["ping", "tcp", "interval_ms", "timeout_ms"])
    ms = {k: t.integer(f"{k}_ms", 1000, lo=50, hi=600000) for k in ("interval", "timeout")}
    return model.WitnessConfig(
        t.items("ping", _ip), t.items("tcp", _hostport), ms["interval"] / 1000, ms["timeout"] / 1000
    )


def _vip(data: Any, path: str) -> model.VipConfig:
    t = _Table(data, path, ["address", "interface"])
    ok = lambda v: isinstance(v, str) and _is_ip(v, prefix=True)  # noqa: E731
    address = t.want("address", _MISSING, ok, 'an address with prefix length like "10.0.0.100/24"')
    iface = t.get("interface")
    if isinstance(iface, dict):
        it = _Table(iface, t.key("interface"), NODE_IDS)
        ifaces = {n: _ifname(it.get(n), it.key(n)) for n in NODE_IDS}
    elif isinstance(iface, str):
        ifaces = dict.fromkeys(NODE_IDS, _ifname(iface, t.key("interface")))
    else:
        allowed = 'an interface name or a table {node1 = "eth0", node2 = "eth1"}'
        raise _bad(t.key("interface"), allowed, iface)
    return model.VipConfig(str(ipaddress.ip_interface(address)), ifaces)


_CHECKER_TARGET: dict[CheckerKind, Callable[[Any, str], str]] = {
    CheckerKind.TCP: _hostport,
    CheckerKind.PING: _host,
    CheckerKind.INTERFACE: _ifname,
    CheckerKind.COMMAND: _checked(str.strip, "a non-empty command line"),
}


def _named(data: Any, base: str, index: int) -> str:
    """``module.web`` once the name is valid (errors read better), else ``module[0]``."""
    name = data.get("name") if isinstance(data, dict) else None
    ok = isinstance(name, str) and _NAME_RE.fullmatch(name)
    return f"{base}.{name}" if ok else f"{base}[{index}]"


def _checker(data: Any, base: str, index: int) -> model.CheckerConfig:
    keys = ["name", "kind", "target", "interval_s", "timeout_s", "failures", "action"]
    t = _Table(data, _named(data, base, index), keys)
    name = t.name()
    kind = CheckerKind(t.choice("kind", [k.value for k in CheckerKind]))
    if kind is CheckerKind.PROCESS:
        target = t.string("target", "", empty=True)
        if target:
            raise _bad(t.key("target"), 'empty for a "process" checker (it uses check)', target)
    else:
        target = _CHECKER_TARGET[kind](t.get("target"), t.key("target"))
    nums = {k: t.number(k, _CHECKER_DEFAULTS[k]) for k in ("interval_s", "timeout_s")}
    action = CheckerAction(t.choice("action", [a.value for a in CheckerAction], "restart"))
    failures = t.integer("failures", 1, lo=1)
    return model.CheckerConfig(name, kind, target, **nums, failures=failures, action=action)


# Defaults come from the model: one source of truth.
_CHECKER_DEFAULTS = {f.name: f.default for f in dataclasses.fields(model.CheckerConfig)}
_MODULE_DEFAULTS = {f.name: f.default for f in dataclasses.fields(model.ModuleConfig)}
_MODULE_NUMBERS = ("start_timeout_s", "stop_timeout_s", "check_timeout_s", "loop_interval_s")
_COMMANDS = ("start", "stop")
_MODULE_KEYS = [
    *("name", "kind", "preferred", *_COMMANDS, "check", *_MODULE_NUMBERS, "maxloop"),
    *("defaultprim", "autostart", "directories", "vip", "checker", "resync_mbps", "async"),
    "write_cache",
]


def _module(data: Any, index: int) -> model.ModuleConfig:
    t = _Table(data, _named(data, "module", index), _MODULE_KEYS)
    name = t.name()
    kind = t.choice("kind", ["app", "vm"])
    cmd_default = _MISSING if kind == "app" else ""  # an app needs start and stop
    checkers: list[model.CheckerConfig] = []
    for i, c in enumerate(t.tables("checker")):
        checker = _checker(c, t.key("checker"), i)
        if any(x.name == checker.name for x in checkers):
            key = f"{t.key('checker')}.{checker.name}.name"
            raise ConfigError(key, f'duplicate checker name "{checker.name}" in module "{name}"')
        checkers.append(checker)
    kw: dict[str, Any] = {k: t.string(k, cmd_default, empty=kind != "app") for k in _COMMANDS}
    kw |= {k: t.number(k, _MODULE_DEFAULTS[k]) for k in _MODULE_NUMBERS}
    kw |= {k: t.flag(k, _MODULE_DEFAULTS[k]) for k in ("defaultprim", "autostart", "write_cache")}
    return model.ModuleConfig(
        name,
        kind,
        preferred=t.choice("preferred", NODE_IDS, NODE_IDS[0]),
        check=t.string("check", "", empty=True),
        maxloop=t.integer("maxloop", 3, lo=0),
        vip=_vip(t.data["vip"], t.key("vip")) if "vip" in t.data else None,
        checkers=tuple(checkers),
        directories=t.items("directories", _abspath),
        # 0 = unlimited; a cap keeps a resync from saturating a shared link.
        resync_mbps=t.number("resync_mbps", None) if "resync_mbps" in t.data else 0.0,
        async_mode=t.choice("async", ["sync", "second"], "sync"),
        **kw,
    )


def _modules(root: _Table) -> tuple[model.ModuleConfig, ...]:
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


def _build(doc: dict[str, Any], text: str, source: str, base_dir: Path | None) -> ClusterConfig:
    root = _Table(doc, "", ["cluster", "tls", "nodes", "heartbeat", "witness", "module"])
    cluster = _cluster(_Table(root.get("cluster"), "cluster", _CLUSTER_KEYS), base_dir)
    tls = _Table(root.get("tls"), "tls", ["ca", "cert", "key"])  # {node} allowed in all
    return ClusterConfig(
        **cluster,
        tls=model.TlsConfig(**{k: tls.string(k) for k in ("ca", "cert", "key")}),
        nodes=_nodes(root.get("nodes")),
        heartbeat=_heartbeats(root),
        witness=_witness(doc["witness"]) if "witness" in doc else model.WitnessConfig(),
        modules=_modules(root),
        source_text=text,
        source_path="" if source == "<string>" else source,
    )


def parse_config(text: str, source: str = "<string>") -> ClusterConfig:
    """Parse and validate config TOML. ``source`` names the file in errors and the result;
    a relative ``secret_file`` is resolved against its directory."""
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
        return _build(doc, text, source, base_dir)
    except ConfigError as e:
        raise ConfigError(e.key, e.detail, source, e.line, e.col) from None


def load_config(path: str | Path) -> ClusterConfig:
    """Read and validate the cluster config file at ``path``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError("", f"cannot read config file: {e}", source=str(path)) from None
    return parse_config(text, source=str(path))
