"""A two-server site as real as one machine allows (DESIGN §10; the guide's "test like a
real two-server site"): each server is a network namespace (tests/integration/netns.py)
*and* a mount namespace of its own that outlives its processes, so a FUSE mount is seen
only by that server's processes and a restarted agent meets the dead mount its killed
predecessor left. The configuration is ``resources/config/cluster.example.toml`` as a
user would copy it: the site's addresses, interface, paths and application commands put
in, nothing else changed (its checkers included). The CLI runs from the client host.

The application is a web server on port 80 (the example's tcp checker probes
127.0.0.1:80) whose page names its node; the module replicates ``<base>/srv/www``, the
same path on both servers, as on a real pair.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.integration.cluster_netns import (
    APP_CHECK,
    APP_STOP,
    BIN,
    MODULE,
    REPO,
    NetnsCluster,
)
from tests.integration.netns import HB_IP, LAN_IF, LAN_IP, VIP, VIP_CIDR, Topology
from tests.integration.site_libvirt import start_libvirtd
from tests.vm.libvirtd import Libvirtd

EXAMPLE = REPO / "resources" / "config" / "cluster.example.toml"
MNT_DIR = Path("/run/mirrorpair-tests/mnt")  # where mount namespaces are kept (bind files)
WEB_PORT = 80
WEB_URL = f"http://{VIP}:{WEB_PORT}/"
_PY = sys.executable
APP_START = (
    'mkdir -p www && echo "$MIRRORPAIR_NODE" > www/index.html && '
    f"{{ {_PY} -m http.server {WEB_PORT} --bind 0.0.0.0 --directory www >http.log 2>&1 & "
    "echo $! > app.pid; } && "
    f'for i in $(seq 100); do {_PY} -c "import socket; '
    f"socket.create_connection(('127.0.0.1', {WEB_PORT}), 0.2)\" 2>/dev/null && exit 0; "
    "sleep 0.05; done; exit 1"
)


def _run(*argv: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))}: {r.stderr.strip()}")
    return r


def _private_mnt_dir() -> None:
    """Bind files of mount namespaces must sit on a private mount (else the namespace
    would contain its own bind mount and could never be released)."""
    MNT_DIR.mkdir(parents=True, exist_ok=True)
    if _run("mountpoint", "-q", MNT_DIR, check=False).returncode != 0:
        _run("mount", "--bind", MNT_DIR, MNT_DIR)
    _run("mount", "--make-private", MNT_DIR)


def _release(path: Path) -> None:
    _run("umount", "-l", path, check=False)
    path.unlink(missing_ok=True)


def cleanup_stale_mount_namespaces() -> None:
    """Mount namespaces whose network namespace is gone (a crashed run) are released."""
    if not MNT_DIR.is_dir():
        return
    alive = set(_run("ip", "netns", "list").stdout.split())
    for path in MNT_DIR.iterdir():
        if path.name not in alive:
            _release(path)


def site_toml(base: Path) -> str:
    """The example config with this site's values: what a user edits, nothing more."""
    text = EXAMPLE.read_text()
    swaps = {
        '"/var/lib/mirrorpair/{node}"': json.dumps(f"{base}/{{node}}/data"),
        '"/etc/mirrorpair/': json.dumps(f"{base}/pki/")[:-1],
        "10.0.0.100/24": VIP_CIDR,
        "10.0.0.254": LAN_IP["client"],
        "10.0.0.1": LAN_IP["node1"],
        "10.0.0.2": LAN_IP["node2"],
        "192.168.100.1": HB_IP["node1"],
        "192.168.100.2": HB_IP["node2"],
        '"eth0"': json.dumps(LAN_IF),
        '"systemctl start nginx"': json.dumps(APP_START),
        '"systemctl stop nginx"': json.dumps(APP_STOP),
        '"systemctl is-active --quiet nginx"': json.dumps(APP_CHECK),
        '"/srv/www"': json.dumps(f"{base}/srv/www"),
    }
    for old, new in swaps.items():
        assert old in text, f"the example config no longer has {old}: update site.py"
        text = text.replace(old, new)
    return text


class Site(NetnsCluster):
    """Two agents on a Topology, each node also in its own persistent mount namespace."""

    def __init__(self, topo: Topology, base: Path) -> None:
        super().__init__(topo, base)
        self.config.write_text(site_toml(base))
        (base / "srv" / "www").mkdir(parents=True, exist_ok=True)
        cleanup_stale_mount_namespaces()
        _private_mnt_dir()
        self.mntns: dict[str, Path] = {}
        self.libvirtds: dict[str, Libvirtd] = {}  # site_libvirt.start_libvirtd
        self.closers: list[Callable[[], None]] = []  # run by close(), after the agents
        for node in ("node1", "node2"):
            path = MNT_DIR / topo.ns[node]
            path.touch()
            # slave: the host's mounts (tmp dirs) reach the server, its mounts stay inside.
            _run("unshare", f"--mount={path}", "--propagation", "slave", "true")
            self.mntns[node] = path
        self.witness = topo.popen("client", [_PY, "-m", "http.server", "80", "--bind",
                                             LAN_IP["client"]], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)  # fmt: skip

    def http(self, url: str = WEB_URL) -> str | None:
        return super().http(url)

    @property
    def www(self) -> Path:
        return self.base / "srv" / "www"

    def nsenter(self, node: str) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.topo.ns[node]}",
                f"--mount={self.mntns[node]}", "--"]  # fmt: skip

    def sh(self, node: str, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A shell command on a server: its network, its mounts."""
        r = subprocess.run([*self.nsenter(node), "sh", "-c", script], capture_output=True,
                           text=True, timeout=60)  # fmt: skip
        if check and r.returncode != 0:
            raise AssertionError(f"{node}$ {script}\n{r.stdout}{r.stderr}")
        return r

    def logs_of(self, node: str, module: str) -> list[dict]:
        addr = f"{LAN_IP[node]}:7700"
        reply = self.probe("client").ask(op="logs", address=addr, node=node, module=module)
        if "entries" not in reply:
            raise AssertionError(f"logs of {node}: {reply.get('error')}")
        return reply["entries"]

    def module_named(self, node: str, name: str) -> dict | None:
        st = self.status(node)
        return next((m for m in st["modules"] if m["name"] == name), None) if st else None

    def wait_module(self, node: str, name: str, state: str, readiness: str | None = None,
                    timeout: float = 30.0) -> dict:  # fmt: skip
        def ok() -> dict | None:
            m = self.module_named(node, name)
            good = (
                m
                and m["state"] == f"STATE_{state}"
                and (readiness is None or m["readiness"] == f"READINESS_{readiness}")
            )
            return m if good else None

        return self.wait_for(ok, f"{name} {state}/{readiness or '*'} on {node}", timeout)

    def mounted(self, node: str) -> bool:
        return self.sh(node, f"mountpoint -q {self.www}", check=False).returncode == 0

    def start(self, *nodes: str, timeout: float = 30.0) -> None:
        for node in nodes or ("node1", "node2"):
            assert node not in self.agents or self.agents[node].poll() is not None
            out = self.out_path(node)
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(out, "ab") as fh:
                fh.write(f"----- agent start {time.strftime('%H:%M:%S')}\n".encode())
                argv = [*self.nsenter(node), str(BIN / "mirrorpair-agent"), "--config",
                        str(self.config_for(node)), "--node", node]  # fmt: skip
                # nsenter execs the agent: .pid is the agent's own.
                self.agents[node] = subprocess.Popen(argv, cwd=REPO, stdout=fh, stderr=fh)
        for node in nodes or ("node1", "node2"):
            self.wait_for(lambda n=node: self._ready(n), f"{node} agent ready", timeout)

    def config_for(self, node: str) -> Path:
        """The config file ``node``'s agent reads (one file for both unless a test gives
        each server its own, as real servers have: a configuration change writes it)."""
        return self.config

    def start_libvirtd(self, node: str, timeout: float = 60.0) -> Libvirtd:
        """``node``'s own libvirtd in its namespaces (tests/integration/site_libvirt.py)."""
        return start_libvirtd(self, node, timeout)

    def run_agent(self, node: str, config: Path) -> subprocess.CompletedProcess[str]:
        """Run an agent on ``node`` with another config file to completion (refusals)."""
        argv = [*self.nsenter(node), str(BIN / "mirrorpair-agent"), "--config", str(config),
                "--node", node]  # fmt: skip
        return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)

    def agent_text(self, node: str) -> str:
        return self.out_path(node).read_text(errors="replace").rsplit("----- agent start", 1)[-1]

    def resyncs(self, node: str) -> list[tuple[str, int]]:
        """(record, bytes sent) of each resync ``node`` completed as primary, oldest first."""
        text = self.out_path(node).read_text(errors="replace")
        pattern = re.compile(rf"{MODULE}: \w+ is up to date \((\w+), (\d+) bytes sent\)")
        return [(m[1], int(m[2])) for m in pattern.finditer(text)]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.witness.kill()
        try:
            super().close()
        finally:
            try:
                for close in reversed(self.closers):
                    close()
            finally:
                for path in self.mntns.values():
                    _release(path)
