"""Two servers as they come out of installation, for the setup wizard's tests (issue 12):
each in its own network and mount namespace, an agent started with no configuration
(pairing open, advertised over mDNS), and the desk PC = this test process, plugged into
the site's LAN switch by a veth so mDNS discovery is real multicast on that LAN.

    desk (root namespace) lan 10.77.0.253 --- switch br0 --- node1 lan0 10.77.0.1
                                                         \\--- node2 lan0 10.77.0.2
"""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tests.integration.cluster_netns import BIN, REPO
from tests.integration.netns import BRIDGE, LAN_IP, PREFIXLEN, Topology
from tests.integration.site import (
    MNT_DIR,
    _private_mnt_dir,
    _release,
    _run,
    cleanup_stale_mount_namespaces,
)

DESK_IP = "10.77.0.253"
DESK_LOCK = Path("/run/mirrorpair-tests/desk.lock")
NODES = ("node1", "node2")
T = TypeVar("T")


class SetupSite:
    def __init__(self, topo: Topology, base: Path) -> None:
        self.topo, self.base = topo, Path(base)
        self.base.mkdir(parents=True, exist_ok=True)
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self.mntns: dict[str, Path] = {}
        cleanup_stale_mount_namespaces()
        _private_mnt_dir()
        for node in NODES:
            path = MNT_DIR / topo.ns[node]
            path.touch()
            _run("unshare", f"--mount={path}", "--propagation", "slave", "true")
            self.mntns[node] = path
        self.desk_if = f"mpd{topo.token}"
        # The desk is this machine's own namespace, with a fixed address on the site's
        # LAN: one site's desk at a time (tests run in parallel), or two routes to
        # 10.77.0.0/24 would take each other's pings and mDNS.
        DESK_LOCK.parent.mkdir(parents=True, exist_ok=True)
        self._desk_lock = open(DESK_LOCK, "w")  # noqa: SIM115 - held until close()
        fcntl.flock(self._desk_lock, fcntl.LOCK_EX)
        try:
            self._attach_desk()
        except BaseException:  # no close() follows a failed constructor
            _run("ip", "link", "del", self.desk_if, check=False)
            self._desk_lock.close()
            raise

    def _attach_desk(self) -> None:
        sw = self.topo.ns["switch"]
        _run("ip", "link", "add", self.desk_if, "type", "veth", "peer", "name", "p-desk",
             "netns", sw)  # fmt: skip
        _run("ip", "-n", sw, "link", "set", "p-desk", "master", BRIDGE, "up")
        _run("ip", "addr", "add", f"{DESK_IP}/{PREFIXLEN}", "dev", self.desk_if)
        _run("ip", "link", "set", self.desk_if, "up")
        self.wait_for(lambda: self.topo.ping("node1", DESK_IP), "desk on the LAN", 10)

    # ----- per server -----------------------------------------------------------------
    def state_dir(self, node: str) -> Path:
        return self.base / node / "state"

    def config_path(self, node: str) -> Path:
        return self.base / node / "cluster.toml"

    def out_path(self, node: str) -> Path:
        return self.base / node / "agent.out"

    def nsenter(self, node: str) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.topo.ns[node]}",
                f"--mount={self.mntns[node]}", "--"]  # fmt: skip

    def sh(self, node: str, script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.nsenter(node), "sh", "-c", script], capture_output=True,
                              text=True, timeout=60)  # fmt: skip

    def start(self, node: str, timeout: float = 30.0) -> None:
        """The agent as installed: no --node, no configuration yet (unless one was
        committed before), mDNS on."""
        out = self.out_path(node)
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "ab") as fh:
            fh.write(f"----- agent start {time.strftime('%H:%M:%S')}\n".encode())
            argv = [*self.nsenter(node), str(BIN / "mirrorpair-agent"), "--config",
                    str(self.config_path(node)), "--state-dir", str(self.state_dir(node)),
                    "--listen", "0.0.0.0:7700"]  # fmt: skip
            self.agents[node] = subprocess.Popen(argv, cwd=REPO, stdout=fh, stderr=fh)
        self.wait_for(lambda: "ready on" in self.agent_text(node), f"{node} ready", timeout)

    def agent_text(self, node: str) -> str:
        proc = self.agents[node]
        text = self.out_path(node).read_text(errors="replace").rsplit("----- agent start", 1)[-1]
        if proc.poll() is not None:
            raise AssertionError(f"{node} agent exited with {proc.returncode}:\n{text}")
        return text

    def code(self, node: str) -> str:
        return (self.state_dir(node) / "pairing-code").read_text().strip()

    def address(self, node: str) -> str:
        return f"{LAN_IP[node]}:7700"

    def kill(self, node: str) -> None:
        proc = self.agents[node]
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(10)

    def wait_for(self, cond: Callable[[], T], what: str, timeout: float, step: float = 0.2) -> T:
        deadline = time.monotonic() + timeout
        while True:
            value = cond()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(step)

    def close(self) -> None:
        for node, proc in self.agents.items():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    self.kill(node)
        _run("ip", "link", "del", self.desk_if, check=False)
        self._desk_lock.close()  # the next site may plug its desk in
        for path in self.mntns.values():
            _release(path)

    def __enter__(self) -> SetupSite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
