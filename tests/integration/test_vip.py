"""VirtualIP in a throwaway network namespace, seen from a second one over a veth pair.

    ns A ("server")                      ns B ("client")
    vip0 10.77.9.1/24  <--- veth --->  peer0 10.77.9.2/24
    VIP 10.77.9.100/24 comes and goes on vip0

VirtualIP uses the current namespace, so each step runs a small driver script
through ``ip netns exec A python -c ...`` and reads its JSON report.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require_binary, require_root

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]
IFACE = "vip0"
PEER_IF = "peer0"
BASE_A = "10.77.9.1/24"
BASE_B = "10.77.9.2/24"
VIP = "10.77.9.100"
VIP_CIDR = f"{VIP}/24"
VIP6_CIDR = "2001:db8:9::100/64"
FAKE_MAC = "02:00:00:00:00:01"

# Runs the listed actions on one VirtualIP; prints {"steps": [...], "log": [[level, msg]]}.
DRIVER = """
import asyncio, json, sys
from node_agent.resources.vip import ResourceError, VirtualIP

async def main(address, iface, actions):
    log = []
    steps = []
    vip = VirtualIP(address, iface, lambda level, msg: log.append([level, msg]))
    for action in actions:
        try:
            if action == "acquire":
                await vip.acquire()
                await vip.wait_announced()
                steps.append("ok")
            elif action == "release":
                await vip.release()
                steps.append("ok")
            elif action == "held":
                steps.append(await vip.is_held())
            elif action == "held_sync":
                steps.append(vip.held())
            else:
                raise SystemExit("unknown action " + action)
        except ResourceError as exc:
            steps.append("ResourceError: " + str(exc))
    print(json.dumps({"steps": steps, "log": log}))

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
"""


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr}")
    return proc


@dataclass
class Pair:
    a: str  # namespace holding the VIP
    b: str  # the neighbour

    def drive(self, address: str, iface: str, *actions: str, prefix: tuple[str, ...] = ()) -> dict:
        argv = ["ip", "netns", "exec", self.a, *prefix, sys.executable, "-c", DRIVER]
        proc = subprocess.run(
            [*argv, address, iface, *actions],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def addrs(self) -> str:
        return sh("ip", "-n", self.a, "-o", "addr", "show", "dev", IFACE).stdout

    def ping_from_b(self, ip: str, attempts: int = 3) -> bool:
        for _ in range(attempts):
            proc = sh("ip", "netns", "exec", self.b, "ping", "-c1", "-W1", "-n", ip, check=False)
            if proc.returncode == 0:
                return True
        return False

    def neigh_mac_in_b(self, ip: str) -> str:
        out = sh("ip", "-n", self.b, "-j", "neigh", "show", ip, "dev", PEER_IF).stdout
        entries = json.loads(out or "[]")
        return entries[0].get("lladdr", "") if entries else ""


@pytest.fixture
def pair() -> Iterator[Pair]:
    require_root()
    require_binary("ip")
    require_binary("ping")
    token = secrets.token_hex(3)
    a, b = f"mp-test-vip-{token}-a", f"mp-test-vip-{token}-b"
    made: list[str] = []
    try:
        for ns in (a, b):
            sh("ip", "netns", "add", ns)
            made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", a, "link", "add", IFACE, "type", "veth", "peer", "name", PEER_IF, "netns", b)
        sh("ip", "-n", a, "addr", "add", BASE_A, "dev", IFACE)
        sh("ip", "-n", b, "addr", "add", BASE_B, "dev", PEER_IF)
        sh("ip", "-n", a, "link", "set", IFACE, "up")
        sh("ip", "-n", b, "link", "set", PEER_IF, "up")
        deadline = time.monotonic() + 5
        while "state UP" not in sh("ip", "-n", a, "link", "show", IFACE).stdout:
            assert time.monotonic() < deadline, "veth did not come up"
            time.sleep(0.02)
        yield Pair(a, b)
    finally:
        for ns in made:
            sh("ip", "netns", "delete", ns, check=False)


def test_acquire_release_and_ping(pair: Pair) -> None:
    assert VIP not in pair.addrs()
    assert not pair.ping_from_b(VIP, attempts=1)

    report = pair.drive(VIP_CIDR, IFACE, "held", "acquire", "held", "held_sync")
    assert report["steps"] == [False, "ok", True, True]
    assert f"inet {VIP_CIDR}" in pair.addrs()
    assert pair.ping_from_b(VIP)

    report = pair.drive(VIP_CIDR, IFACE, "acquire")  # idempotent
    assert report["steps"] == ["ok"]
    assert any("already on" in msg for _, msg in report["log"])
    assert pair.addrs().count(f"inet {VIP_CIDR}") == 1

    report = pair.drive(VIP_CIDR, IFACE, "release", "held", "release", "held_sync")
    assert report["steps"] == ["ok", False, "ok", False]
    assert VIP not in pair.addrs()
    assert BASE_A in pair.addrs()  # the server's own address is untouched
    assert not pair.ping_from_b(VIP, attempts=1)


def test_gratuitous_arp_updates_the_neighbour(pair: Pair) -> None:
    require_binary("arping")
    # B believes the VIP lives at another MAC (where it was before a failover).
    sh("ip", "-n", pair.b, "neigh", "replace", VIP, "lladdr", FAKE_MAC, "dev", PEER_IF, "nud",
       "stale")  # fmt: skip
    assert pair.neigh_mac_in_b(VIP) == FAKE_MAC
    report = pair.drive(VIP_CIDR, IFACE, "acquire")
    assert report["steps"] == ["ok"]
    assert any("gratuitous ARP sent" in msg for _, msg in report["log"]), report["log"]
    assert not [m for level, m in report["log"] if level == "warning"]
    own_mac = json.loads(sh("ip", "-n", pair.a, "-j", "link", "show", IFACE).stdout)[0]["address"]
    deadline = time.monotonic() + 3
    while pair.neigh_mac_in_b(VIP) != own_mac:
        assert time.monotonic() < deadline, f"neighbour still has {pair.neigh_mac_in_b(VIP)}"
        time.sleep(0.05)


def test_bad_interface(pair: Pair) -> None:
    report = pair.drive(VIP_CIDR, "nope0", "acquire", "held", "release")
    error, held, released = report["steps"]
    assert error.startswith("ResourceError: ")
    assert "nope0" in error and VIP_CIDR in error
    assert held is False
    assert released == "ok"  # nothing to remove from an interface that does not exist
    assert any(level == "warning" and "nope0" in msg for level, msg in report["log"])


def test_without_cap_net_admin_raises(pair: Pair) -> None:
    setpriv = require_binary("setpriv")
    # Root, but with CAP_NET_ADMIN removed from the bounding set: the kernel answers EPERM.
    prefix = (setpriv, "--bounding-set=-net_admin", "--inh-caps=-net_admin")
    report = pair.drive(VIP_CIDR, IFACE, "acquire", prefix=prefix)
    (error,) = report["steps"]
    assert error.startswith("ResourceError: ")
    assert "permission denied" in error and IFACE in error and VIP_CIDR in error
    assert VIP not in pair.addrs()


def test_ipv6_vip(pair: Pair) -> None:
    report = pair.drive(VIP6_CIDR, IFACE, "acquire", "held", "acquire")
    assert report["steps"] == ["ok", True, "ok"]
    assert any("no gratuitous ARP" in msg for _, msg in report["log"])
    assert "inet6 2001:db8:9::100/64" in pair.addrs()
    report = pair.drive(VIP6_CIDR, IFACE, "release", "held", "release")
    assert report["steps"] == ["ok", False, "ok"]
    assert "2001:db8:9::100" not in pair.addrs()


def test_invalid_address_is_a_resource_error() -> None:
    from node_agent.resources.vip import ResourceError, VirtualIP

    with pytest.raises(ResourceError, match="10.0.0.300"):
        VirtualIP("10.0.0.300/24", "eth0", lambda level, msg: None)
