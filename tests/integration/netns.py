"""Two servers and a client on one machine, as network namespaces (DESIGN.md §10).

    node1 ns                     switch ns: bridge br0                     node2 ns
    lan0 10.77.0.1/24 ---------- p-node1   p-node2 ---------------------- lan0 10.77.0.2/24
                                      p-client
                                         |
                                 client ns: lan0 10.77.0.254/24   (client / ping witness)
    hb0 10.78.0.1/24 ------------------------------------------------------ hb0 10.78.0.2/24

The LAN (10.77.0.0/24, ``lan0`` in every host namespace) runs through a Linux bridge in its own
``switch`` namespace; ``hb0`` is a direct veth pair node1<->node2, the second heartbeat network.
The tests' virtual IP is :data:`VIP_CIDR` (10.77.0.100/24) on a node's ``lan0``.

Usage (the ``topology`` fixture in tests/integration/conftest.py does the with-block for you)::

    with Topology() as topo:
        topo.exec("node1", "ip", "-br", "addr")              # CompletedProcess, check=True
        agent = topo.popen("node2", [sys.executable, "-m", "node_agent.main", ...])
        assert topo.ping("client", LAN_IP["node1"])
        topo.cut("direct")                                   # hb0 down on both ends
        topo.restore("direct")
        topo.ns["node1"]                                     # real name, e.g. "mp-3fa9c1-node1"

``close()`` (or leaving the with-block) kills every process in the namespaces and deletes them.
Namespaces left behind by a crashed run are removed by :func:`cleanup_stale`, which the fixture
calls once per session; it never touches namespaces whose creating process is still alive, so
concurrent test sessions on one machine do not break each other.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from node_agent import procfs

__all__ = [
    "BRIDGE",
    "DEFAULT_PREFIX",
    "HB_IF",
    "HB_IP",
    "HB_NET",
    "HOSTS",
    "LAN_IF",
    "LAN_IP",
    "LAN_NET",
    "LINKS",
    "PREFIXLEN",
    "ROLES",
    "VIP",
    "VIP_CIDR",
    "CommandError",
    "HarnessError",
    "Topology",
    "cleanup_stale",
]

DEFAULT_PREFIX = "mp-"
HOSTS = ("node1", "node2", "client")  # namespaces that have a lan0
ROLES = (*HOSTS, "switch")
LINKS = ("lan:node1", "lan:node2", "lan:client", "direct")

LAN_IF = "lan0"
HB_IF = "hb0"
BRIDGE = "br0"
PREFIXLEN = 24
LAN_NET = "10.77.0.0/24"
HB_NET = "10.78.0.0/24"
LAN_IP = {"node1": "10.77.0.1", "node2": "10.77.0.2", "client": "10.77.0.254"}
HB_IP = {"node1": "10.78.0.1", "node2": "10.78.0.2"}
VIP = "10.77.0.100"
VIP_CIDR = f"{VIP}/{PREFIXLEN}"

# Ownership records: one file per topology, "<pid> <process start time>" of its creator.
# /run is a tmpfs, cleared at boot together with /run/netns.
RUN_DIR = Path("/run/mirrorpair-tests/netns")
_TOKEN_BYTES = 3  # 6 hex digits
_KILL_GRACE_S = 2.0
_LINK_WAIT_S = 5.0
_PING_STEP_S = 0.25


class HarnessError(RuntimeError):
    """The topology could not be built, changed or torn down."""


class CommandError(subprocess.CalledProcessError):
    """A command failed; str() shows the command, its exit status, stdout and stderr."""

    def __str__(self) -> str:
        cmd = shlex.join(str(c) for c in self.cmd) if not isinstance(self.cmd, str) else self.cmd
        parts = [f"command failed (exit {self.returncode}): {cmd}"]
        for label, data in (("stdout", self.stdout), ("stderr", self.stderr)):
            if data:
                text = data.decode(errors="replace") if isinstance(data, bytes) else data
                parts.append(f"--- {label}:\n{text.rstrip()}")
        return "\n".join(parts)


def _run(cmd: Sequence[str], *, check: bool = True, timeout: float = 30.0, **kw: Any):
    """subprocess.run with text capture; raises CommandError (with output) on failure."""
    if not any(k in kw for k in ("stdout", "stderr", "capture_output")):
        kw["capture_output"] = True
    kw.setdefault("text", True)
    proc = subprocess.run(list(cmd), check=False, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise CommandError(proc.returncode, proc.args, proc.stdout, proc.stderr)
    return proc


def _ip(*args: str, ns: str | None = None) -> subprocess.CompletedProcess[str]:
    return _run(["ip", *(["-n", ns] if ns else []), *args])


def _netns_list() -> list[str]:
    out = _ip("netns", "list").stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _proc_start_time(pid: int) -> str | None:
    ticks = procfs.start_time(pid)
    return None if ticks is None else str(ticks)


def _owner_alive(record: Path) -> bool:
    try:
        pid_s, start = record.read_text().split()
        return _proc_start_time(int(pid_s)) == start
    except (OSError, ValueError):
        return False


def _kill_netns_processes(names: Sequence[str]) -> None:
    """SIGTERM every process inside the namespaces, then SIGKILL what is left after a grace."""

    def pids() -> set[int]:
        found: set[int] = set()
        for name in names:
            proc = _run(["ip", "netns", "pids", name], check=False)
            found |= {int(p) for p in proc.stdout.split() if p.isdigit()}
        found.discard(os.getpid())
        return found

    def send(sig: int, targets: set[int]) -> None:
        for pid in targets:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    left = pids()
    if not left:
        return
    send(signal.SIGTERM, left)
    deadline = time.monotonic() + _KILL_GRACE_S
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = pids()
    send(signal.SIGKILL, left)


def _delete_netns(names: Sequence[str]) -> list[str]:
    """Kill processes in, then delete, the namespaces; return error messages (never raises)."""
    errors: list[str] = []
    try:
        _kill_netns_processes(names)
    except (OSError, subprocess.SubprocessError) as exc:
        errors.append(f"killing processes in {list(names)}: {exc}")
    for name in names:
        proc = _run(["ip", "netns", "delete", name], check=False)
        if proc.returncode != 0 and name in _netns_list():
            errors.append(f"ip netns delete {name}: {proc.stderr.strip()}")
    return errors


def cleanup_stale(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Delete namespaces left by crashed runs; return the names deleted.

    Only names of our exact pattern (``<prefix><6 hex>-<node1|node2|client|switch>``) are
    considered, and only when the process that created them is gone (or left no record).
    """
    pattern = re.compile(
        rf"^{re.escape(prefix)}([0-9a-f]{{{2 * _TOKEN_BYTES}}})-(?:{'|'.join(ROLES)})$"
    )
    groups: dict[str, list[str]] = {}
    for name in _netns_list():
        m = pattern.match(name)
        if m:
            groups.setdefault(m.group(1), []).append(name)
    deleted: list[str] = []
    errors: list[str] = []
    for token, names in sorted(groups.items()):
        record = RUN_DIR / f"{prefix}{token}"
        if _owner_alive(record):
            continue
        errors += _delete_netns(names)
        deleted += names
        record.unlink(missing_ok=True)
    # Records of owners that died after (or before) their namespaces went away.
    if RUN_DIR.is_dir():
        for record in RUN_DIR.glob(f"{prefix}*"):
            if record.name[len(prefix) :] not in groups and not _owner_alive(record):
                record.unlink(missing_ok=True)
    if errors:
        raise HarnessError("cleanup_stale: " + "; ".join(errors))
    return deleted


class Topology:
    """node1, node2, client and a switch namespace, wired as in the module docstring.

    Built in the constructor (a failure midway removes what was made and raises); use as a
    context manager or call :meth:`close`. Host arguments (``ns``, ``from_ns``) accept a role
    (``"node1"``, ``"node2"``, ``"client"``, ``"switch"``) or a real namespace name.
    """

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        existing = set(_netns_list())
        while True:
            token = secrets.token_hex(_TOKEN_BYTES)
            names = {role: f"{prefix}{token}-{role}" for role in ROLES}
            if not existing & set(names.values()):
                break
        self.token = token
        #: role -> real namespace name, e.g. ns["node1"] == "mp-3fa9c1-node1"
        self.ns: dict[str, str] = names
        self._record = RUN_DIR / f"{prefix}{token}"
        self._created: list[str] = []
        self._procs: list[subprocess.Popen[Any]] = []
        self._cut: set[str] = set()
        self._closed = False
        try:
            self._build()
        except BaseException as exc:
            errors = self._teardown()
            if errors:
                exc.add_note("cleanup after the failed build also failed: " + "; ".join(errors))
            raise

    # -- building -------------------------------------------------------------------------------

    def _build(self) -> None:
        RUN_DIR.mkdir(parents=True, exist_ok=True)  # record first: cleanup_stale respects it
        self._record.write_text(f"{os.getpid()} {_proc_start_time(os.getpid())}\n")
        for role in ROLES:
            _ip("netns", "add", self.ns[role])
            self._created.append(self.ns[role])
            _ip("link", "set", "lo", "up", ns=self.ns[role])
        sw = self.ns["switch"]
        _ip("link", "add", BRIDGE, "type", "bridge", "stp_state", "0", ns=sw)
        _ip("link", "set", BRIDGE, "up", ns=sw)
        for host in HOSTS:
            port, ns = self._port(host), self.ns[host]
            _ip("link", "add", port, "type", "veth", "peer", "name", LAN_IF, "netns", ns, ns=sw)
            _ip("link", "set", port, "master", BRIDGE, "up", ns=sw)
            _ip("addr", "add", f"{LAN_IP[host]}/{PREFIXLEN}", "dev", LAN_IF, ns=ns)
            _ip("link", "set", LAN_IF, "up", ns=ns)
        n1, n2 = self.ns["node1"], self.ns["node2"]
        _ip("link", "add", HB_IF, "type", "veth", "peer", "name", HB_IF, "netns", n2, ns=n1)
        for node in ("node1", "node2"):
            _ip("addr", "add", f"{HB_IP[node]}/{PREFIXLEN}", "dev", HB_IF, ns=self.ns[node])
            _ip("link", "set", HB_IF, "up", ns=self.ns[node])
        for link in LINKS:
            self._wait_oper(link, up=True)

    @staticmethod
    def _port(host: str) -> str:
        return f"p-{host}"  # the host's port on the bridge, in the switch namespace

    def _ends(self, link: str) -> list[tuple[str, str]]:
        """(namespace, interface) of both ends of a link."""
        if link == "direct":
            return [(self.ns["node1"], HB_IF), (self.ns["node2"], HB_IF)]
        kind, _, host = link.partition(":")
        if kind == "lan" and host in HOSTS:
            return [(self.ns["switch"], self._port(host)), (self.ns[host], LAN_IF)]
        raise ValueError(f"unknown link {link!r}; expected one of {', '.join(LINKS)}")

    def _wait_oper(self, link: str, *, up: bool) -> None:
        deadline = time.monotonic() + _LINK_WAIT_S
        while True:
            states = {}
            for ns, dev in self._ends(link):
                info = json.loads(_ip("-j", "link", "show", "dev", dev, ns=ns).stdout)[0]
                states[f"{ns}/{dev}"] = info.get("operstate")
            if all((s == "UP") == up for s in states.values()):
                return
            if time.monotonic() > deadline:
                raise HarnessError(f"link {link} not {'up' if up else 'down'}: {states}")
            time.sleep(0.02)

    def _name(self, ns: str) -> str:
        if ns in self.ns:
            return self.ns[ns]
        if ns in self.ns.values():
            return ns
        raise ValueError(f"unknown namespace {ns!r}; expected one of {', '.join(ROLES)}")

    def _check_open(self) -> None:
        if self._closed:
            raise HarnessError("the topology is closed")

    # -- running things -------------------------------------------------------------------------

    def exec(
        self,
        ns: str,
        *cmd: str | os.PathLike[str],
        check: bool = True,
        timeout: float = 30.0,
        **kw: Any,
    ) -> subprocess.CompletedProcess[Any]:
        """Run ``cmd`` inside namespace ``ns`` and wait for it.

        Defaults: output captured as text, ``check=True`` (raises :class:`CommandError`, whose
        message includes stdout/stderr), ``timeout=30``. Other keywords go to subprocess.run.
        """
        self._check_open()
        if not cmd:
            raise ValueError("exec: no command given")
        argv = ["ip", "netns", "exec", self._name(ns), *map(os.fspath, cmd)]
        return _run(argv, check=check, timeout=timeout, **kw)

    def popen(
        self, ns: str, cmd: Sequence[str | os.PathLike[str]] | str, **kw: Any
    ) -> subprocess.Popen[Any]:
        """Start ``cmd`` (an argv list; a string is split with shlex) inside namespace ``ns``.

        Keywords go to subprocess.Popen. The process is the command itself (``ip netns exec``
        execs it), so ``.pid``, ``.send_signal(SIGKILL)`` etc. act on it directly. Processes
        still running are killed by :meth:`close`.
        """
        self._check_open()
        argv = shlex.split(cmd) if isinstance(cmd, str) else [os.fspath(c) for c in cmd]
        if not argv:
            raise ValueError("popen: empty command")
        proc = subprocess.Popen(["ip", "netns", "exec", self._name(ns), *argv], **kw)
        self._procs.append(proc)
        return proc

    def ping(self, from_ns: str, ip: str, *, timeout: float = 2.0) -> bool:
        """True as soon as ``ip`` answers a ping from ``from_ns``; False after ``timeout`` s.

        Pings are re-sent every 0.25 s until one is answered. Right after a :meth:`restore` the
        sender's ARP entry may need up to ~1 s (the kernel's retransmit time) to resolve, hence
        the 2 s default; pass a short ``timeout`` when asserting that ``ip`` is unreachable.
        """
        deadline = time.monotonic() + timeout
        while True:
            started = time.monotonic()
            wait = max(0.05, min(_PING_STEP_S, deadline - started))
            proc = self.exec(
                from_ns, "ping", "-n", "-q", "-c", "1", "-W", f"{wait:.2f}", ip,
                check=False, timeout=wait + 10,
            )  # fmt: skip
            if proc.returncode == 0:
                return True
            now = time.monotonic()
            if now >= deadline:
                return False
            time.sleep(max(0.0, min(started + wait, deadline) - now))  # e.g. "unreachable"

    # -- failures -------------------------------------------------------------------------------

    def cut(self, link: str) -> None:
        """Take a link down: ``"lan:node1"``, ``"lan:node2"``, ``"lan:client"`` set the host's
        bridge port and its ``lan0`` down; ``"direct"`` sets ``hb0`` down on both nodes.
        Addresses (including a VIP) stay configured. Idempotent."""
        self._check_open()
        for ns, dev in self._ends(link):
            _ip("link", "set", dev, "down", ns=ns)
        self._cut.add(link)

    def restore(self, link: str) -> None:
        """Bring a link back up (both ends) and wait until it is operationally UP. Idempotent.

        Connected routes come back with the interface; routes a test added by hand do not."""
        self._check_open()
        for ns, dev in self._ends(link):
            _ip("link", "set", dev, "up", ns=ns)
        self._wait_oper(link, up=True)
        self._cut.discard(link)

    @property
    def cut_links(self) -> frozenset[str]:
        """Links currently cut through :meth:`cut`."""
        return frozenset(self._cut)

    # -- teardown -------------------------------------------------------------------------------

    def _teardown(self) -> list[str]:
        errors: list[str] = []
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + _KILL_GRACE_S
        for proc in self._procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        errors += _delete_netns(self._created)
        self._created.clear()
        if not errors:
            self._record.unlink(missing_ok=True)
        return errors

    def close(self) -> None:
        """Kill every process in the namespaces, delete them. Idempotent."""
        if self._closed:
            return
        self._closed = True
        errors = self._teardown()
        if errors:
            raise HarnessError("Topology.close: " + "; ".join(errors))

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Topology {self.token} {state} cut={sorted(self._cut)}>"
