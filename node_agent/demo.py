"""A complete two-node cluster on one machine, for trying MirrorPair and for tests.

``build_demo_cluster`` (node_agent.demo_cluster) writes its files; ``AgentProcess``
runs one ``mirrorpair-agent`` for it; ``run_demo`` is `mirrorpair demo`: both agents, a
plain web module and (where FUSE allows) a replicated one, the console, and a control
socket through which `mirrorpair demo kill|restart NODE` crash and revive an agent.
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
from node_agent.cli.console_cmd import console_problem, how_to_watch_text
from node_agent.cli.exits import Exit
from node_agent.config.load import load_config
from node_agent.config.model import NODE_IDS
from node_agent.dataplane.supervisor import kill_data_planes
from node_agent.demo_cluster import APP_SCRIPT, DemoCluster, DemoError, build_demo_cluster
from node_agent.demo_control import ControlServer
from node_agent.demo_vm import demo_module
from protos import mirrorpair_pb2 as pb


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
    """Until every agent answers GetStatus and has started its modules (none that starts
    by itself is still STOP: the banner's `state web` would say STOP otherwise); DemoError
    (with its log) if one exits or hangs."""
    config = load_config(cluster.config_path)
    autostart = {m.name for m in config.modules if m.autostart}
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
                    status = c.status()
            except AgentClientError as e:
                last[node] = str(e)
                continue
            stopped = [m.name for m in status.modules
                       if m.name in autostart and m.state == pb.STATE_STOP]  # fmt: skip
            if stopped:
                last[node] = f"{', '.join(stopped)} not started yet"
            else:
                del pending[node]
        if pending and time.monotonic() > deadline:
            node, agent = next(iter(pending.items()))
            raise DemoError(
                f"agent {node} did not answer within {timeout_s:g}s "
                f"({last.get(node, '')}); its log:\n{agent.log_tail()}"
            )
        if pending:
            time.sleep(0.2)


def kill_demo_apps(cluster: DemoCluster) -> None:
    """Kill sample app servers and data planes left behind (a demo leaves nothing)."""
    for node in NODE_IDS:
        kill_data_planes(cluster.data_dirs.get(node, cluster.root / node))
    for pidfile in cluster.root.glob("node*/*.pid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if APP_SCRIPT.encode() in cmdline:  # never a recycled pid of someone else
                os.kill(pid, signal.SIGKILL)


def cli_command(cluster: DemoCluster) -> str:
    """`mirrorpair` with the options to reach this cluster, runnable as pasted: the full
    path of the mirrorpair next to this Python (the venv's), else `python -m`."""
    exe = Path(sys.executable).parent / "mirrorpair"
    argv = [str(exe)] if os.access(exe, os.X_OK) else [sys.executable, "-m", "node_agent.cli.main"]
    return shlex.join([*argv, *cluster.cli_args()])


def console_command(cluster: DemoCluster) -> list[str]:
    """`mirrorpair ... console`: checks for the extra and a display, then the console."""
    return [*shlex.split(cli_command(cluster)), "console"]


def _vm_module(root: Path, replication: str | None) -> tuple[str, str]:
    """(config section, banner line) of the demo's VM module, or ("", why there is none)."""
    problem = replication or demo_module.vm_problem()
    if problem is None:
        try:
            section, log = demo_module.prepare(root)
        except demo_module.GuestBuildError as e:
            problem = f"its guest could not be built ({e})"
        else:
            return section, (f"{demo_module.NAME}: a small VM (QEMU) whose disk is "
                             f"replicated; its serial console: tail -f {log}")  # fmt: skip
    return "", f"No VM module: {problem}."


def replication_problem() -> str | None:
    """Why this machine cannot serve a replicated module through FUSE, or None."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing (modprobe fuse)"
    if os.geteuid() == 0:
        return None
    if shutil.which("fusermount3") is None:
        return "fusermount3 is missing (apt-get install fuse3)"
    try:
        conf = Path("/etc/fuse.conf").read_text()
    except OSError:
        conf = ""
    if not any(line.strip() == "user_allow_other" for line in conf.splitlines()):
        return "not root, and /etc/fuse.conf lacks user_allow_other (the mount needs allow_other)"
    return None


def _banner(cluster: DemoCluster, agents: Sequence[AgentProcess], replication: str) -> str:
    cli = cli_command(cluster)
    nodes = "\n".join(
        f"  {a.node} agent: {cluster.api[a.node]}  (pid {a.proc.pid if a.proc else '?'}, "
        f"log {a.log_path})"
        for a in agents
    )
    web = []
    for m in cluster.web_ports:
        what = (
            f"records into the replicated directory {cluster.replicated[m]}"
            if m in cluster.replicated
            else "the page names the node serving it"
        )
        web.append(f"  {m}: {cluster.url(m)}  ({what})")
    repl = cluster.replicated and next(iter(cluster.replicated))
    tries = [
        f"{cli} status",
        f'{cli} state web --node node1; echo "exit $?"',
        f"{cli} swap web --wait",
        f"{cli} log --follow",
    ]
    if repl:
        tries.append(f"{cli} verify {repl}")
    lines = "\n".join(f"  {t}" for t in tries)
    resync = f"; {repl}'s resync graph is in the console" if repl else ""
    return f"""
MirrorPair demo cluster running in {cluster.root}
{nodes}
  CA: {cluster.ca}   admin certificate: {cluster.admin_cert}  key: {cluster.admin_key}
Sample modules:
{chr(10).join(web)}
{replication}
No virtual IP in the demo (adding addresses needs root).

Try, in another terminal (each line runs as pasted):
{lines}
A server "crash" (SIGKILL of its agent: the other node takes over), then its return
(as secondary, resynchronizing what changed meanwhile{resync}):
  {cli} demo kill node2
  {cli} demo restart node2

Press Ctrl-C to stop the agents and remove the folder.
"""


def start_console(cluster: DemoCluster) -> subprocess.Popen | None:
    """Open the desktop console on the demo cluster, or say clearly why not and how to
    watch it in a way that works (the console must run on this machine: the agents
    listen on 127.0.0.x)."""
    shown = shlex.join(console_command(cluster))
    problem = console_problem()
    if problem is not None:
        how = how_to_watch_text(shown) if "display" in problem else f"  then: {shown}"
        print(f"{problem}: running the agents only. To watch them in the console:\n{how}",
              flush=True)  # fmt: skip
        return None
    print("opening the console ...", flush=True)
    return subprocess.Popen(console_command(cluster), stdin=subprocess.DEVNULL)


def unmount_under(root: Path) -> None:
    """Lazily unmount every mount below ``root`` (from mountinfo: a dead FUSE mount fails
    os.path.ismount), deepest first."""
    prefix = str(root.resolve()) + "/"
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            points = [line.split()[4].replace("\\040", " ") for line in f]
    except OSError:
        return
    for point in sorted((p for p in points if p.startswith(prefix)), reverse=True):
        with contextlib.suppress(OSError):
            subprocess.run(["fusermount3", "-uz", point], capture_output=True, check=False)


def _make_root(directory: Path | None) -> Path:
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="mirrorpair-demo-"))
    root = Path(directory)
    if root.exists() and any(root.iterdir()):
        raise DemoError(f"{root} is not empty (the demo removes its folder at exit)")
    root.mkdir(parents=True, exist_ok=True)
    return root


class _Supervisor:
    """The demo's agents: kill/restart on request (control socket), exits reported once."""

    def __init__(self, cluster: DemoCluster, vm: bool = False) -> None:
        self.agents = {n: AgentProcess(cluster, n) for n in NODE_IDS}
        self.cluster = cluster
        self.vm = vm
        self._reported: set[int] = set()

    def request(self, action: str, node: str) -> str:
        agent = self.agents.get(node)
        if agent is None:
            raise ValueError(f"no node {node!r} (node1 or node2)")
        if action == "kill":
            if not agent.alive():
                raise ValueError(f"the {node} agent is not running")
            pid = agent.proc.pid if agent.proc else 0
            agent.kill()  # the demo's terminal says so too, with how to restart it
            # A server crash: its data planes (mounts, streams) die with it.
            kill_data_planes(self.cluster.data_dirs.get(node, self.cluster.root / node))
            # The server dies with its VM (an agent alone killed leaves QEMU running).
            gone = demo_module.destroy(node) if self.vm else []
            vm = f", its VM {gone[0]} destroyed" if gone else ""
            return f"{node} agent (pid {pid}) killed with SIGKILL{vm}"
        was = "restarted" if agent.alive() else "started again"
        agent.stop()
        agent.start()
        wait_ready(self.cluster, [agent])
        return f"{node} agent {was} (pid {agent.proc.pid if agent.proc else '?'})"

    def report_exits(self) -> None:
        for a in self.agents.values():
            pid = a.proc.pid if a.proc else 0
            if not a.alive() and pid not in self._reported:
                self._reported.add(pid)
                cmd = f"{cli_command(self.cluster)} demo restart {a.node}"
                print(f"agent {a.node} exited (code {a.returncode}); see {a.log_path}\n"
                      f"  start it again with: {cmd}", flush=True)  # fmt: skip


def run_demo(directory: Path | None = None, *, keep: bool = False, console: bool = False) -> int:
    """`mirrorpair demo`: build, start both agents, wait for Ctrl-C/SIGTERM, clean up."""
    try:
        root = _make_root(directory)
    except (DemoError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return Exit.LOCAL
    stop = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    old_term = signal.signal(signal.SIGTERM, on_term)
    sup: _Supervisor | None = None
    control: ControlServer | None = None
    console_proc: subprocess.Popen | None = None
    try:
        problem = replication_problem()
        modules, replicated = (("web",), ()) if problem else (("web", "recorder"), ("recorder",))
        vm_section, vm_note = _vm_module(root, problem)
        cluster = build_demo_cluster(root, modules=modules, replicated=replicated,
                                     extra_toml=vm_section)  # fmt: skip
        note = (f"No replicated module: {problem}.\n" if problem else "") + vm_note
        sup = _Supervisor(cluster, vm=bool(vm_section))
        for a in sup.agents.values():
            a.start()
        print(f"starting two agents in {root} ...", flush=True)
        wait_ready(cluster, sup.agents.values())
        try:
            control = ControlServer(root, sup.request)
        except OSError as e:  # e.g. a socket path over 107 bytes
            print(f"warning: no `demo kill/restart` ({root}/demo.sock: {e})", flush=True)
        print(_banner(cluster, list(sup.agents.values()), note), flush=True)
        if console:
            console_proc = start_console(cluster)
        while not stop:
            sup.report_exits()
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
        return Exit.LOCAL
    finally:
        signal.signal(signal.SIGTERM, old_term)
        if control is not None:
            control.close()
        if console_proc is not None and console_proc.poll() is None:
            console_proc.terminate()
        print("\nstopping the agents ...", flush=True)
        agents = list(sup.agents.values()) if sup else []
        for a in agents:
            if a.proc is not None and a.proc.poll() is None:
                a.proc.terminate()  # both at once: each may take up to its grace period
        for a in agents:
            a.stop()
        if sup is not None:
            kill_demo_apps(sup.cluster)
            if sup.vm:  # a VM left by a killed agent
                demo_module.destroy()
        unmount_under(root)  # a killed agent leaves its FUSE mount behind, dead
        if keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return Exit.OK
