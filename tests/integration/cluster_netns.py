"""Real agents on the netns topology (tests/integration/netns.py): PKI, config, processes.

``NetnsCluster`` writes a CA, node and admin certificates and a cluster TOML into a
directory, starts ``mirrorpair-agent`` in the node namespaces (output in
``<dir>/<node>/agent.out``), and observes them from inside the namespaces through
*probes*: long-lived helper processes (cluster_netns_probe.py) that answer JSON
requests on stdin -- gRPC GetStatus/GetLogs, HTTP GET, UDP send -- so a poll costs
milliseconds, not an interpreter start. Commands go through the real CLI.

The module ``web`` is a ``python -m http.server`` on :8080 serving a page that names the
node, with the VIP 10.77.0.100/24 on ``lan0``. "Power off" a node = SIGKILL its agent
and its app and cut its LAN port and the direct link, so nothing of it answers on any
network, as for a real dead server; "power on" = drop the VIP (a reboot loses addresses),
restore the links, start the agent.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from node_agent.dataplane.supervisor import kill_data_planes, running_data_planes
from protos.security.ca import create_ca, issue_certificate
from tests.integration.netns import HB_IP, LAN_IF, LAN_IP, VIP, VIP_CIDR, Topology

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODULE = "web"
APP_PORT = 8080
VIP_URL = f"http://{VIP}:{APP_PORT}/"
API_PORT = 7700
HB_PORT = 7701
PULSE_MS = 250
TIMEOUT_MS = 1500
SECRET = "netns-test-secret-0123456789"
NODES = ("node1", "node2")

# cwd = the module's data dir, MIRRORPAIR_NODE set by the agent. The start command
# returns only once the server accepts connections: "started" means "serving".
_PY = sys.executable
APP_START = (
    'mkdir -p www && echo "$MIRRORPAIR_NODE" > www/index.html && '
    f"{{ {_PY} -m http.server {APP_PORT} --bind 0.0.0.0 --directory www >http.log 2>&1 & "
    "echo $! > app.pid; } && "
    f'for i in $(seq 100); do {_PY} -c "import socket; '
    f"socket.create_connection(('127.0.0.1', {APP_PORT}), 0.2)\" 2>/dev/null && exit 0; "
    "sleep 0.05; done; exit 1"
)
# pid 1 of this machine reaps orphans late: a zombie must count as dead.
_ALIVE = "kill -0 $p 2>/dev/null && ! grep -qs '^State:[[:space:]]*Z' /proc/$p/status"
APP_STOP = (
    "p=$(cat app.pid 2>/dev/null) || exit 0; kill $p 2>/dev/null; "
    f"while {_ALIVE}; do sleep 0.05; done; rm -f app.pid"
)
APP_CHECK = f"p=$(cat app.pid) && {_ALIVE}"


def cluster_toml(
    base: Path,
    *,
    witness: bool = False,
    maxloop: int = 2,
    pulse_ms: int = PULSE_MS,
    timeout_ms: int = TIMEOUT_MS,
) -> str:
    """The cluster config for the netns topology; every path below ``base``."""
    hb = "".join(
        f'[[heartbeat]]\nname = "{name}"\nnode1 = "{ips["node1"]}"\n'
        f'node2 = "{ips["node2"]}"\nport = {HB_PORT}\n\n'
        for name, ips in (("lan", LAN_IP), ("direct", HB_IP))
    )
    wit = (
        f'[witness]\nping = ["{LAN_IP["client"]}"]\ninterval_ms = 250\ntimeout_ms = 500\n\n'
        if witness
        else ""
    )
    nodes = "".join(f'[nodes.{n}]\napi = "{LAN_IP[n]}:{API_PORT}"\n\n' for n in NODES)
    return f"""[cluster]
name = "nstest"
secret = "{SECRET}"
pulse_ms = {pulse_ms}
timeout_ms = {timeout_ms}
data_dir = "{base}/{{node}}/data"

[tls]
ca = "{base}/pki/ca.pem"
cert = "{base}/pki/{{node}}.pem"
key = "{base}/pki/{{node}}.key"

{nodes}{hb}{wit}[[module]]
name = "{MODULE}"
kind = "app"
preferred = "node1"
start = {json.dumps(APP_START)}
stop = {json.dumps(APP_STOP)}
check = {json.dumps(APP_CHECK)}
start_timeout_s = 15
stop_timeout_s = 10
check_timeout_s = 3
maxloop = {maxloop}
loop_interval_s = 120

  [module.vip]
  address = "{VIP_CIDR}"
  interface = "{LAN_IF}"

  [[module.checker]]
  name = "process"
  kind = "process"
  interval_s = 0.5
  timeout_s = 3
  failures = 1
  action = "restart"
"""


def write_pki(base: Path) -> None:
    """CA + node1/node2 (server+client) + admin (client) in base/pki; a rogue CA with
    its own admin certificate in base/rogue (valid-looking, wrong issuer)."""
    pki = base / "pki"
    create_ca(pki, "nstest")
    for node in NODES:
        issue_certificate(pki, node, pki, ips=[LAN_IP[node], HB_IP[node]])
    issue_certificate(pki, "admin", pki, server=False)
    create_ca(base / "rogue", "nstest")
    issue_certificate(base / "rogue", "admin", base / "rogue", server=False)


class ProbeError(RuntimeError):
    pass


class Probe:
    """A helper process inside one namespace answering JSON requests (cluster_netns_probe)."""

    def __init__(self, topo: Topology, ns: str, base: Path) -> None:
        pki = base / "pki"
        argv = [_PY, "-m", "tests.integration.cluster_netns_probe", str(pki / "ca.pem"),
                str(pki / "admin.pem"), str(pki / "admin.key")]  # fmt: skip
        self.ns = ns
        env = {**os.environ, "GRPC_VERBOSITY": "ERROR"}  # refused handshakes are expected
        self.proc = topo.popen(
            ns, argv, cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def ask(self, timeout: float = 10.0, **request: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.close()
            raise ProbeError(f"probe in {self.ns} gave no answer to {request}")
        return json.loads(line)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        self.proc.wait()


class NetnsCluster:
    """Two agents on a Topology. Use as a context manager (kills what it started)."""

    def __init__(self, topo: Topology, base: Path, *, witness: bool = False, **kw: Any) -> None:
        self.topo, self.base = topo, base
        base.mkdir(parents=True, exist_ok=True)
        write_pki(base)
        self.config = base / "cluster.toml"
        self.config.write_text(cluster_toml(base, witness=witness, **kw))
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self._probes: dict[str, Probe] = {}

    # -- processes ------------------------------------------------------------------------
    def out_path(self, node: str) -> Path:
        return self.base / node / "agent.out"

    def module_dir(self, node: str) -> Path:
        return self.base / node / "data" / "modules" / MODULE

    def start(self, *nodes: str, timeout: float = 20.0) -> None:
        """Start agents and wait until each printed its ``ready`` line."""
        for node in nodes or NODES:
            assert node not in self.agents or self.agents[node].poll() is not None
            out = self.out_path(node)
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(out, "ab") as fh:
                fh.write(f"----- agent start {time.strftime('%H:%M:%S')}\n".encode())
                argv = [BIN / "mirrorpair-agent", "--config", self.config, "--node", node]
                self.agents[node] = self.topo.popen(node, argv, cwd=REPO, stdout=fh, stderr=fh)
        for node in nodes or NODES:
            self.wait_for(lambda n=node: self._ready(n), f"{node} agent ready", timeout)

    def _ready(self, node: str) -> bool:
        text = f"mirrorpair-agent {node} ready on"
        proc = self.agents[node]
        if proc.poll() is not None:
            raise AssertionError(f"{node} agent exited with {proc.returncode}\n{self.tail(node)}")
        return text in self.out_path(node).read_text(errors="replace").rsplit("-----", 1)[-1]

    def kill_agent(self, node: str, data_planes: bool = True) -> None:
        """SIGKILL the agent -- and, unless told otherwise, its modules' data planes: the
        crash of MirrorPair on that server, its mounts and streams with it (the agent
        alone dying leaves them serving: test_site_dataplane.py)."""
        proc = self.agents[node]
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        if data_planes:
            self.kill_data_planes(node)

    def stop_agent(self, node: str, timeout: float = 30.0) -> int:
        """A clean stop (SIGTERM): the agent stops its module first."""
        proc = self.agents[node]
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout)

    def app_pid(self, node: str) -> int | None:
        try:
            return int((self.module_dir(node) / "app.pid").read_text())
        except (OSError, ValueError):
            return None

    def app_running(self, node: str) -> bool:
        pid = self.app_pid(node)
        cmd = APP_CHECK.replace("$(cat app.pid)", str(pid))
        return pid is not None and subprocess.run(["sh", "-c", cmd]).returncode == 0

    def kill_app(self, node: str) -> int | None:
        pid = self.app_pid(node)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pid

    def data_plane_pids(self, node: str) -> dict[str, int]:
        """module -> pid of each data plane process of ``node`` that runs."""
        return running_data_planes(self.base / node / "data")

    def dataplane_text(self, node: str, module: str = MODULE) -> str:
        """What ``node``'s data plane of ``module`` logged (all its runs)."""
        path = self.base / node / "data" / "modules" / module / "dataplane" / "dataplane.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill_data_planes(self, node: str) -> None:
        """SIGKILL every data plane of ``node`` (they outlive an agent, not a server)."""
        kill_data_planes(self.base / node / "data")

    def power_off(self, node: str) -> None:
        """SIGKILL agent, app and data planes, and cut the node from every network (see
        module doc)."""
        self.kill_agent(node)
        self.kill_app(node)
        self.kill_data_planes(node)
        self.topo.cut(f"lan:{node}")
        self.topo.cut("direct")

    def power_on(self, node: str) -> None:
        self.topo.exec(node, "ip", "addr", "del", VIP_CIDR, "dev", LAN_IF, check=False)
        self.topo.restore(f"lan:{node}")
        self.topo.restore("direct")
        self.start(node)

    def close(self) -> None:
        for probe in self._probes.values():
            probe.close()
        for node, proc in self.agents.items():
            if proc.poll() is None:
                self.kill_agent(node)
            self.kill_app(node)
            self.kill_data_planes(node)

    def __enter__(self) -> NetnsCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- observing ------------------------------------------------------------------------
    def probe(self, ns: str) -> Probe:
        if ns not in self._probes or self._probes[ns].proc.poll() is not None:
            self._probes[ns] = Probe(self.topo, ns, self.base)
        return self._probes[ns]

    def status(self, node: str, via: str = "client") -> dict[str, Any] | None:
        """The node's NodeStatus as a dict (enum names, defaults included), None if
        unreachable. ``via`` is the namespace asking (a node reaches itself when cut)."""
        reply = self.probe(via).ask(op="status", address=f"{LAN_IP[node]}:{API_PORT}", node=node)
        return reply.get("status")

    def status_with(self, node: str, ca: Path, cert: Path | None, key: Path | None) -> str:
        """GetStatus from the client namespace with other TLS files: "ok" or the error."""
        tls = [str(ca), cert and str(cert), key and str(key)]
        addr = f"{LAN_IP[node]}:{API_PORT}"
        reply = self.probe("client").ask(op="status", address=addr, node=node, tls=tls)
        return "ok" if "status" in reply else reply["error"]

    def module(self, node: str, via: str = "client") -> dict[str, Any] | None:
        st = self.status(node, via)
        return st["modules"][0] if st else None

    def state(self, node: str, via: str = "client") -> tuple[str, str] | None:
        """("PRIM", "READY")-style pair, or None when the agent does not answer."""
        m = self.module(node, via)
        if m is None:
            return None
        return m["state"].removeprefix("STATE_"), m["readiness"].removeprefix("READINESS_")

    def logs(self, node: str, via: str = "client") -> list[dict[str, Any]]:
        addr = f"{LAN_IP[node]}:{API_PORT}"
        reply = self.probe(via).ask(op="logs", address=addr, node=node, module=MODULE)
        if "entries" not in reply:
            raise ProbeError(f"logs of {node}: {reply.get('error')}")
        return reply["entries"]

    def http(self, url: str = VIP_URL) -> str | None:
        """Body of a GET from the client namespace, None on any failure."""
        return self.probe("client").ask(op="http", url=url).get("body")

    def vip_on(self, node: str) -> bool:
        out = self.topo.exec(node, "ip", "-o", "addr", "show", "dev", LAN_IF).stdout
        return f" {VIP_CIDR} " in out

    def send_udp(self, ns: str, src: tuple[str, int], dst: tuple[str, int], data: bytes) -> None:
        payload = base64.b64encode(data).decode()
        reply = self.probe(ns).ask(op="udp", src=list(src), dst=list(dst), data=payload)
        if not reply.get("ok"):
            raise ProbeError(f"udp send from {ns}: {reply.get('error')}")

    def cli_argv(self, *args: str, cert: str = "admin") -> list[str | Path]:
        creds: list[str] = []
        if cert:
            d = self.base / ("rogue" if cert == "rogue" else "pki")
            creds = ["--cert", str(d / "admin.pem"), "--key", str(d / "admin.key")]
        return [BIN / "mirrorpair", "--config", self.config, *creds, *args]

    def cli(
        self, *args: str, ns: str = "client", cert: str = "admin", timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the real ``mirrorpair`` CLI in ``ns`` (cert "admin", "rogue" or "") as a
        script would: stdin is /dev/null, never a terminal."""
        argv = self.cli_argv(*args, cert=cert)
        return self.topo.exec(
            ns, *argv, check=False, timeout=timeout, cwd=REPO, stdin=subprocess.DEVNULL
        )

    # -- waiting --------------------------------------------------------------------------
    def wait_for(self, cond: Callable[[], T], what: str, timeout: float, step: float = 0.1) -> T:
        """Poll ``cond`` until truthy; on the deadline fail with the agents' log tails."""
        deadline = time.monotonic() + timeout
        while True:
            value = cond()
            if value:
                return value
            if time.monotonic() > deadline:
                tails = "\n".join(self.tail(n) for n in self.agents)
                raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}\n{tails}")
            time.sleep(step)

    def wait_state(
        self, node: str, state: str, readiness: str | None = None, *,
        timeout: float = 15.0, via: str = "client",
    ) -> dict[str, Any]:  # fmt: skip
        def ok() -> dict[str, Any] | None:
            m = self.module(node, via)
            if (
                m
                and m["state"] == f"STATE_{state}"
                and (readiness is None or m["readiness"] == f"READINESS_{readiness}")
            ):
                return m
            return None

        return self.wait_for(ok, f"{node} {state}/{readiness or '*'}", timeout)

    def wait_pair(self, primary: str = "node1", timeout: float = 20.0) -> None:
        """Wait for PRIM/READY + SECOND/READY and the VIP answering from the primary."""
        secondary = NODES[1] if primary == NODES[0] else NODES[0]
        self.wait_state(primary, "PRIM", "READY", timeout=timeout)
        self.wait_state(secondary, "SECOND", "READY", timeout=timeout)
        self.wait_for(lambda: self.http() == f"{primary}\n", f"VIP serving {primary}", timeout)

    def tail(self, node: str, lines: int = 25) -> str:
        parts = [f"--- {node} agent.out (last {lines} lines):"]
        with contextlib.suppress(OSError):
            parts += self.out_path(node).read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(parts)
