"""A complete two-node cluster on one machine, for trying MirrorPair and for tests.

``build_demo_cluster`` writes everything into one folder: a cluster CA, node1/node2
and admin certificates, a ``cluster.toml`` (node1's API on 127.0.0.1, node2's on
127.0.0.2 -- all of 127/8 is local on Linux -- two heartbeat networks on loopback
addresses) and one or more sample ``app`` modules (``demo_app.py``: a web page that
names the node serving it). No virtual IP: adding addresses needs root.

``AgentProcess`` runs one ``mirrorpair-agent`` for it; ``run_demo`` is `mirrorpair demo`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from node_agent.cli.client import AgentClient, AgentClientError
from node_agent.config.load import parse_config
from node_agent.config.model import NODE_IDS
from node_agent.tls.ca import create_ca, issue_certificate, server_name

API_HOSTS = {"node1": "127.0.0.1", "node2": "127.0.0.2"}
LAN = {"node1": "127.0.0.1", "node2": "127.0.0.2"}
DIRECT = {"node1": "127.0.1.1", "node2": "127.0.1.2"}
APP_SCRIPT = "demo_app.py"


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
        ]

    def client(self, node: str, timeout: float = 5.0) -> AgentClient:
        """An AgentClient for ``node`` with the admin certificate."""
        return AgentClient(
            self.api[node],
            server_name(node),
            self.ca,
            self.admin_cert,
            self.admin_key,
            timeout=timeout,
            node_id=node,
        )

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


def _app_module(name: str, port: int, root: Path, preferred: str) -> str:
    app = f"{shlex.quote(sys.executable)} {shlex.quote(str(root / APP_SCRIPT))}"
    return f"""
[[module]]
name = {_toml(name)}
kind = "app"
preferred = "{preferred}"
start = {_toml(f"{app} start {name} {port}")}
stop = {_toml(f"{app} stop {name}")}
check = {_toml(f"{app} check {name}")}
start_timeout_s = 20
stop_timeout_s = 20

  [[module.checker]]
  name = "http"
  kind = "tcp"
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
) -> DemoCluster:
    """Write a demo cluster into ``root`` (created if missing) and return where things are.

    ``modules`` names sample app modules (each its own web port, preferred node
    alternating node1/node2 from the first); ``extra_toml`` is appended verbatim
    (more [[module]] tables, a [witness]...). The config is validated before returning.
    """
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

[nodes.node1]
api = "{api["node1"]}"

[nodes.node2]
api = "{api["node2"]}"

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
        text += _app_module(module, web_ports[module], root, NODE_IDS[i % 2])
    text += extra_toml
    config_path = root / "cluster.toml"
    parse_config(text, str(config_path))  # a demo that cannot load must fail here, clearly
    config_path.write_text(text, encoding="utf-8")
    config_path.chmod(0o600)  # it holds the cluster secret
    return DemoCluster(
        root, config_path, root / "ca.pem", admin_cert, admin_key, api, web_ports, data_dirs
    )


class AgentProcess:
    """One `mirrorpair-agent` of a demo cluster, its output appended to <root>/<node>-agent.log."""

    def __init__(self, cluster: DemoCluster, node: str, log_level: str = "INFO") -> None:
        self.cluster, self.node, self.log_level = cluster, node, log_level
        self.log_path = cluster.root / f"{node}-agent.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.alive():
            return
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.cluster.agent_command(self.node, self.log_level),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal reaches the demo only
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def kill(self) -> None:
        """SIGKILL: the server "crashes"."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``grace_s``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def wait_ready(cluster: DemoCluster, agents: Iterable[AgentProcess], timeout_s: float = 30) -> None:
    """Until every agent answers GetStatus; DemoError (with its log) if one exits or hangs."""
    pending = {a.node: a for a in agents}
    deadline = time.monotonic() + timeout_s
    last: dict[str, str] = {}
    while pending:
        for node, agent in list(pending.items()):
            if not agent.alive():
                raise DemoError(
                    f"agent {node} exited with code {agent.returncode}; "
                    f"its log ({agent.log_path}):\n{agent.log_tail()}"
                )
            try:
                with cluster.client(node, timeout=2.0) as c:
                    c.status()
                del pending[node]
            except AgentClientError as e:
                last[node] = str(e)
        if pending and time.monotonic() > deadline:
            node, agent = next(iter(pending.items()))
            raise DemoError(
                f"agent {node} did not answer within {timeout_s:g}s "
                f"({last.get(node, '')}); its log:\n{agent.log_tail()}"
            )
        if pending:
            time.sleep(0.2)


def kill_demo_apps(cluster: DemoCluster) -> None:
    """Kill sample app servers left behind (their pid files in the nodes' data dirs)."""
    for pidfile in cluster.root.glob("node*/*.pid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if APP_SCRIPT.encode() in cmdline:  # never a recycled pid of someone else
                os.kill(pid, signal.SIGKILL)


def _banner(cluster: DemoCluster, agents: Sequence[AgentProcess]) -> str:
    cli = "mirrorpair " + " ".join(shlex.quote(a) for a in cluster.cli_args())
    nodes = "\n".join(
        f"  {a.node} agent: {cluster.api[a.node]}  (pid {a.proc.pid if a.proc else '?'}, "
        f"log {a.log_path})"
        for a in agents
    )
    web = "\n".join(
        f"  {m}: {cluster.url(m)}  (the page names the node serving it)" for m in cluster.web_ports
    )
    return f"""
MirrorPair demo cluster running in {cluster.root}
{nodes}
  CA: {cluster.ca}   admin certificate: {cluster.admin_cert}  key: {cluster.admin_key}
Sample modules:
{web}
No virtual IP in the demo (adding addresses needs root).

Try, in another terminal:
  {cli} status
  {cli} state web --node node1; echo "exit $?"
  {cli} swap web
  {cli} log web
  kill -9 <pid of the primary's agent>   # a server "crash": the other node takes over

Press Ctrl-C to stop the agents and remove the folder.
"""


def console_command(cluster: DemoCluster) -> list[str]:
    return [
        sys.executable,
        "-m",
        "console.app",
        "--cluster-config",
        str(cluster.config_path),
        "--cert",
        str(cluster.admin_cert),
        "--key",
        str(cluster.admin_key),
    ]


def start_console(cluster: DemoCluster) -> subprocess.Popen | None:
    """Open the desktop console on the demo cluster, or say clearly why not."""
    shown = " ".join(console_command(cluster))
    has_display = any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY"))
    if not has_display and os.environ.get("QT_QPA_PLATFORM", "") != "offscreen":
        print(
            "no display found (DISPLAY and WAYLAND_DISPLAY are unset): running the agents "
            f"only. To watch them, run on a desktop:\n  {shown}",
            flush=True,
        )
        return None
    try:
        import PySide6  # noqa: F401
    except ImportError:
        print(f"PySide6 is not installed: running the agents only.\n  {shown}", flush=True)
        return None
    print("opening the console ...", flush=True)
    return subprocess.Popen(console_command(cluster), stdin=subprocess.DEVNULL)


def run_demo(directory: Path | None = None, *, keep: bool = False, console: bool = False) -> int:
    """`mirrorpair demo`: build, start both agents, wait for Ctrl-C/SIGTERM, clean up."""
    if directory is not None:
        directory = Path(directory)
        if directory.exists() and any(directory.iterdir()):
            print(
                f"error: {directory} is not empty (the demo removes its folder at exit)",
                file=sys.stderr,
            )
            return 1
        root = directory
        root.mkdir(parents=True, exist_ok=True)
    else:
        root = Path(tempfile.mkdtemp(prefix="mirrorpair-demo-"))
    stop = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    old_term = signal.signal(signal.SIGTERM, on_term)
    agents: list[AgentProcess] = []
    console_proc: subprocess.Popen | None = None
    try:
        cluster = build_demo_cluster(root)
        agents = [AgentProcess(cluster, n) for n in NODE_IDS]
        for a in agents:
            a.start()
        print(f"starting two agents in {root} ...", flush=True)
        wait_ready(cluster, agents)
        print(_banner(cluster, agents), flush=True)
        if console:
            console_proc = start_console(cluster)
        reported: set[str] = set()
        while not stop:
            for a in agents:
                if not a.alive() and a.node not in reported:
                    reported.add(a.node)
                    print(
                        f"agent {a.node} exited (code {a.returncode}); see {a.log_path}", flush=True
                    )
            time.sleep(0.5)
            if console_proc is not None and console_proc.poll() is not None:
                print(
                    "the console was closed; the agents keep running (Ctrl-C ends the demo)",
                    flush=True,
                )
                console_proc = None
    except KeyboardInterrupt:
        pass
    except DemoError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, old_term)
        if console_proc is not None and console_proc.poll() is None:
            console_proc.terminate()
        print("\nstopping the agents ...", flush=True)
        for a in agents:
            if a.proc is not None and a.proc.poll() is None:
                a.proc.terminate()  # both at once: each may take up to its grace period
        for a in agents:
            a.stop()
        if agents:
            kill_demo_apps(agents[0].cluster)
        if keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0
