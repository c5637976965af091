"""The demo cluster's files: ``build_demo_cluster`` writes a cluster CA, node1/node2
and admin certificates, a ``cluster.toml`` (node1's API on 127.0.0.1, node2's on
127.0.0.2 -- all of 127/8 is local on Linux -- two heartbeat networks on loopback
addresses) and one or more sample ``app`` modules (``demo_app.py``: a web page that
names the node serving it) into one folder. A *replicated* module also records into a
directory that MirrorPair replicates (FUSE: root, or user_allow_other), so a resync, its
graph and `mirrorpair verify` can be seen. No virtual IP: adding addresses needs root.

The config keeps to the validation rules: module directories absolute, outside
data_dir (<root>/{node}), never nested; each node's API and replication ports differ.

Running its agents is node_agent.demo's part.
"""

from __future__ import annotations

import json
import secrets
import shlex
import shutil
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from node_agent.cli.client import AgentClient, TlsFiles
from node_agent.config.load import parse_config
from node_agent.config.model import NODE_IDS
from protos.security.ca import create_ca, issue_certificate

API_HOSTS = {"node1": "127.0.0.1", "node2": "127.0.0.2"}
LAN = {"node1": "127.0.0.1", "node2": "127.0.0.2"}
DIRECT = {"node1": "127.0.1.1", "node2": "127.0.1.2"}
APP_SCRIPT = "demo_app.py"
RESYNC_MBPS = 2  # the replicated module's resync cap: a resync lasts long enough to watch


class DemoError(RuntimeError):
    """The demo cluster could not be built or its agents did not come up."""


@dataclass(frozen=True)
class DemoCluster:
    root: Path
    config_path: Path
    ca: Path
    admin_cert: Path
    admin_key: Path
    api: dict[str, str]  # node id -> "host:port" of its agent
    web_ports: dict[str, int]  # module name -> port its page is served on (127.0.0.1)
    data_dirs: dict[str, Path] = field(default_factory=dict)
    replicated: dict[str, str] = field(default_factory=dict)  # module -> directory ({node})

    def cli_args(self) -> list[str]:
        """Global `mirrorpair` options to reach this cluster as the admin."""
        return [
            "--config",
            str(self.config_path),
            "--cert",
            str(self.admin_cert),
            "--key",
            str(self.admin_key),
        ]

    def agent_command(self, node: str, log_level: str = "INFO") -> list[str]:
        return [
            sys.executable,
            "-m",
            "node_agent.main",
            "--config",
            str(self.config_path),
            "--node",
            node,
            "--log-level",
            log_level,
            # Its stderr is where the demo (and the tests) keep an agent's log.
            "--log-file",
            "-",
            # The console reaches the demo's agents by its config; advertised, they would
            # show up in a real setup wizard on the LAN as two servers to pair.
            "--no-mdns",
        ]

    def client(self, node: str, timeout: float = 5.0) -> AgentClient:
        """An AgentClient for ``node`` with the admin certificate."""
        tls = TlsFiles(self.ca, self.admin_cert, self.admin_key)
        return AgentClient.for_node(node, self.api[node], tls, timeout)

    def url(self, module: str) -> str:
        return f"http://127.0.0.1:{self.web_ports[module]}/"


def free_ports(count: int, kind: int = socket.SOCK_STREAM) -> list[int]:
    """Ports free on every address right now (bound on the wildcard, all at once so
    they differ). Another process may still take one before it is used: tests retry."""
    socks = [socket.socket(socket.AF_INET, kind) for _ in range(count)]
    try:
        for s in socks:
            s.bind(("0.0.0.0", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _toml(value: str) -> str:
    return json.dumps(value)  # a JSON string (ASCII, escaped) is a valid TOML basic string


def _app_module(name: str, port: int, root: Path, preferred: str, directory: str = "") -> str:
    app = f"{shlex.quote(sys.executable)} {shlex.quote(str(root / APP_SCRIPT))}"
    # The app finds its data through the mount path ({node} replaced by demo_app.py).
    data = f" {shlex.quote(directory)}" if directory else ""
    replication = (
        f"directories = [{_toml(directory)}]\nresync_mbps = {RESYNC_MBPS}\n" if directory else ""
    )
    return f"""
[[module]]
name = {_toml(name)}
kind = "app"
preferred = "{preferred}"
{replication}start = {_toml(f"{app} start {name} {port}{data}")}
stop = {_toml(f"{app} stop {name}")}
check = {_toml(f"{app} check {name}")}
start_timeout_s = 20
stop_timeout_s = 20

  [[module.checker]]
  name = "http"
  kind = "tcp"                      # when = "primary" (the default): where the page is served
  target = "127.0.0.1:{port}"
  interval_s = 2
  timeout_s = 1
  failures = 2
"""


def build_demo_cluster(
    root: Path,
    *,
    modules: Sequence[str] = ("web",),
    pulse_ms: int = 500,
    timeout_ms: int = 3000,
    extra_toml: str = "",
    name: str = "demo",
    replicated: Sequence[str] = (),
    replication_ports: bool = False,
) -> DemoCluster:
    """Write a demo cluster into ``root`` (created if missing) and return where things are.

    ``modules`` names sample app modules (each its own web port, preferred node
    alternating node1/node2 from the first); those also in ``replicated`` record into
    a replicated directory <root>/mounts/{node}/NAME (their agents need FUSE).
    ``extra_toml`` is appended verbatim (more [[module]] tables, a [witness]...);
    ``replication_ports``: give each node a free replication port even when no sample
    module replicates (a module of ``extra_toml`` does: the default port may be taken).
    The config is validated before returning.
    """
    unknown = set(replicated) - set(modules)
    if unknown:
        raise DemoError(f"replicated modules must be among the modules: {sorted(unknown)}")
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    create_ca(root, name)
    for node in NODE_IDS:
        issue_certificate(root, node, root, ips=[API_HOSTS[node], LAN[node]])
    admin_cert, admin_key = issue_certificate(root, "admin", root, server=False)
    shutil.copyfile(Path(__file__).with_name(APP_SCRIPT), root / APP_SCRIPT)

    api_ports = free_ports(2)
    hb_ports = free_ports(2, socket.SOCK_DGRAM)
    web_ports = dict(zip(modules, free_ports(len(modules)), strict=True))
    api = {n: f"{API_HOSTS[n]}:{p}" for n, p in zip(NODE_IDS, api_ports, strict=True)}
    # Replication receivers on free ports of their own (the default, 7702, may be taken
    # by another demo or test cluster on this machine).
    repl = (
        dict(zip(NODE_IDS, free_ports(2), strict=True)) if replicated or replication_ports else {}
    )
    directories = {m: str(root / "mounts" / "{node}" / m) for m in replicated}
    data_dirs = {n: root / n for n in NODE_IDS}
    for d in data_dirs.values():
        d.mkdir(exist_ok=True)

    text = f"""# MirrorPair demo cluster: two agents on this machine (see `mirrorpair demo`).
[cluster]
name = {_toml(name)}
version = 1
secret = {_toml(secrets.token_hex(16))}
pulse_ms = {pulse_ms}
timeout_ms = {timeout_ms}
data_dir = {_toml(str(root / "{node}"))}

[tls]
ca = {_toml(str(root / "ca.pem"))}
cert = {_toml(str(root / "{node}.pem"))}
key = {_toml(str(root / "{node}.key"))}

{_nodes(api, repl)}
[[heartbeat]]
name = "lan"
node1 = "{LAN["node1"]}"
node2 = "{LAN["node2"]}"
port = {hb_ports[0]}

[[heartbeat]]
name = "direct"
node1 = "{DIRECT["node1"]}"
node2 = "{DIRECT["node2"]}"
port = {hb_ports[1]}
"""
    for i, module in enumerate(modules):
        directory = directories.get(module, "")
        text += _app_module(module, web_ports[module], root, NODE_IDS[i % 2], directory)
    text += extra_toml
    config_path = root / "cluster.toml"
    parse_config(text, str(config_path))  # a demo that cannot load must fail here, clearly
    config_path.write_text(text, encoding="utf-8")
    config_path.chmod(0o600)  # it holds the cluster secret
    return DemoCluster(
        root, config_path, root / "ca.pem", admin_cert, admin_key, api, web_ports, data_dirs,
        directories,
    )  # fmt: skip


def _nodes(api: dict[str, str], repl: dict[str, int]) -> str:
    out = ""
    for n in NODE_IDS:
        out += f'[nodes.{n}]\napi = "{api[n]}"\n'
        if n in repl:
            out += f'replication = "{API_HOSTS[n]}:{repl[n]}"\n'
        out += "\n"
    return out
