"""A complete two-node cluster on one machine, for trying MirrorPair and for tests.

``build_demo_cluster`` (node_agent.demo_cluster) writes its files; ``AgentProcess``
runs one ``mirrorpair-agent`` for it; ``run_demo`` is `mirrorpair demo`.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from node_agent.cli.client import AgentClientError
from node_agent.config.model import NODE_IDS
from node_agent.demo_cluster import APP_SCRIPT, DemoCluster, DemoError, build_demo_cluster


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
