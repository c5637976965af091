"""Checks across sections of a parsed cluster config: each value on its own is load.py's
job; here are the combinations that would break a node at run time (issue 10, point 5).

Every refusal names the dotted key to change and what it collides with. Paths are
compared as written, with ``{node}`` replaced by each node id in turn (the same file
serves both nodes); symlinks are not followed (the config is checked without touching
the disk).
"""

from __future__ import annotations

import contextlib
import ipaddress
import posixpath
from collections.abc import Iterator

from node_agent.config.model import NODE_IDS, ClusterConfig, ModuleConfig
from node_agent.config.table import ConfigError


def check_cluster(cfg: ClusterConfig) -> None:
    """Raise ConfigError for the first dangerous combination found."""
    _check_listeners(cfg)
    _check_metrics(cfg)
    for node in NODE_IDS:
        _check_directories(cfg, node)
    _check_vips(cfg)


# -- listening addresses -------------------------------------------------------------------
def _endpoint(hostport: str) -> tuple[str, int]:
    host, _, port = hostport.rpartition(":")
    host = host.strip("[]").lower()
    with contextlib.suppress(ValueError):  # a host name stays as written
        host = str(ipaddress.ip_address(host))  # one spelling per address
    return host, int(port)


def _check_listeners(cfg: ClusterConfig) -> None:
    """Two TCP listeners on one address: the second agent or listener cannot bind."""
    seen: dict[tuple[str, int], str] = {}
    for node in NODE_IDS:
        n = cfg.nodes[node]
        repl_key = f"nodes.{node}.replication"
        listeners = [(f"nodes.{node}.api", _endpoint(n.api))]
        host, port = n.replication_address
        implicit = "" if n.replication else f" (the default: the api host, port {port})"
        listeners.append((repl_key, (_endpoint(f"[{host}]:{port}")[0], port)))
        for key, endpoint in listeners:
            other = seen.setdefault(endpoint, key)
            if other != key:
                what = f"{endpoint[0]}:{endpoint[1]}"
                detail = f"{what}{implicit if key == repl_key else ''} is already {other}"
                if key == repl_key and not n.replication:
                    detail += f'; set {repl_key} = "HOST:PORT" to another port'
                raise ConfigError(key, detail)


_WILDCARDS = ("0.0.0.0", "::")


def _check_metrics(cfg: ClusterConfig) -> None:
    """The metrics endpoint (one value for both nodes) must not take a node's API or
    replication port: same port and same host, or either on every address."""
    if not cfg.metrics.listen:
        return
    host, port = _endpoint(cfg.metrics.listen)
    for node in NODE_IDS:
        n = cfg.nodes[node]
        rhost, rport = n.replication_address
        taken = {f"nodes.{node}.api": _endpoint(n.api),
                 f"nodes.{node}.replication": _endpoint(f"[{rhost}]:{rport}")}  # fmt: skip
        for key, (h, p) in taken.items():
            if p == port and (h == host or host in _WILDCARDS or h in _WILDCARDS):
                raise ConfigError("metrics.listen", f"port {port} is already {key} "
                                  f"({h}:{p}); choose another port")  # fmt: skip


# -- replicated directories ----------------------------------------------------------------
def _norm(path: str, node: str) -> str:
    return posixpath.normpath(path.replace("{node}", node))


def _inside(path: str, parent: str) -> bool:
    return parent == "/" or path.startswith(parent.rstrip("/") + "/")


def _directories_of(cfg: ClusterConfig, node: str) -> Iterator[tuple[str, ModuleConfig, str]]:
    for m in cfg.modules:
        for i, d in enumerate(m.directories):
            yield f"module.{m.name}.directories[{i}]", m, _norm(d, node)


def _check_directories(cfg: ClusterConfig, node: str) -> None:
    data_dir = _norm(cfg.data_dir, node)
    seen: list[tuple[str, ModuleConfig, str]] = []
    for key, module, path in _directories_of(cfg, node):
        if path == "/":
            raise ConfigError(key, "must not be / (a module replicates its own directory)")
        if path == data_dir or _inside(path, data_dir) or _inside(data_dir, path):
            where = "inside" if _inside(path, data_dir) else "around"
            raise ConfigError(
                key,
                f"{path} is {where} cluster.data_dir ({data_dir} on {node}), where the agent "
                "keeps each module's copy: a replicated directory must lie outside it",
            )
        for other_key, other, other_path in seen:
            owner = "this module" if other is module else f'module "{other.name}"'
            if path == other_path:
                raise ConfigError(key, f"{path} is already {other_key} ({owner})")
            if _inside(path, other_path) or _inside(other_path, path):
                inner, outer = (path, other_path) if _inside(path, other_path) else (
                    other_path, path)  # fmt: skip
                raise ConfigError(
                    key,
                    f"{inner} lies inside {outer} ({other_key} of {owner}): replicated "
                    "directories must not be nested",
                )
        seen.append((key, module, path))


# -- virtual IPs -----------------------------------------------------------------------------
def _node_addresses(cfg: ClusterConfig) -> Iterator[tuple[str, str, str]]:
    """(node, what, ip) for every address a node owns according to the config."""
    for node in NODE_IDS:
        n = cfg.nodes[node]
        yield node, "api address (nodes.{node}.api)", _endpoint(n.api)[0]
        yield node, "replication address", n.replication_address[0]
        for net in cfg.heartbeat:
            yield node, f'address on heartbeat network "{net.name}"', net.addresses[node]


def _check_vips(cfg: ClusterConfig) -> None:
    """A VIP is moved between nodes: equal to a node's own address, `stop` would take
    that address (and the API behind it) off the node."""
    owned: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, tuple[str, str]] = {}
    for node, what, text in _node_addresses(cfg):
        try:
            owned.setdefault(ipaddress.ip_address(text), (node, what.format(node=node)))
        except ValueError:
            continue  # a host name: nothing to compare without resolving it
    for m in cfg.modules:
        if m.vip is None:
            continue
        ip = ipaddress.ip_interface(m.vip.address).ip
        if ip in owned:
            node, what = owned[ip]
            raise ConfigError(
                f"module.{m.name}.vip.address",
                f"{ip} is {node}'s own {what}: a virtual IP must be an address no node "
                "owns (it moves between them)",
            )
