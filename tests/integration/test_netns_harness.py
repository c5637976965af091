"""Tests of the network-namespace harness itself (tests/integration/netns.py)."""

from __future__ import annotations

import secrets
import subprocess
import sys

import pytest

from tests.conftest import require_binary, require_root
from tests.integration.netns import (
    HB_IP,
    LAN_IF,
    LAN_IP,
    VIP,
    CommandError,
    Topology,
    cleanup_stale,
)

pytestmark = pytest.mark.root


@pytest.fixture(autouse=True)
def _needs_ping() -> None:
    require_binary("ping")


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def test_namespaces_and_addresses(topology: Topology) -> None:
    assert set(topology.ns) == {"node1", "node2", "client", "switch"}
    assert set(topology.ns.values()) <= netns_names()
    for role, name in topology.ns.items():
        assert name.startswith("mp-") and name.endswith(f"-{role}")
    out = topology.exec("node1", "ip", "-br", "addr").stdout
    assert f"{LAN_IP['node1']}/24" in out and f"{HB_IP['node1']}/24" in out
    lo = topology.exec("client", "ip", "-br", "link", "show", "lo").stdout
    assert "UNKNOWN" in lo or "UP" in lo


def test_nodes_reach_each_other_on_both_networks(topology: Topology) -> None:
    assert topology.ping("node1", LAN_IP["node2"])
    assert topology.ping("node1", HB_IP["node2"])
    assert topology.ping("node2", LAN_IP["node1"])
    assert topology.ping("node2", HB_IP["node1"])


def test_client_reaches_both_nodes_on_lan(topology: Topology) -> None:
    assert topology.ping("client", LAN_IP["node1"])
    assert topology.ping("client", LAN_IP["node2"])
    assert not topology.ping("client", HB_IP["node1"], timeout=0.5)  # hb0 is not on the LAN


def test_cut_and_restore_direct(topology: Topology) -> None:
    topology.cut("direct")
    assert topology.cut_links == {"direct"}
    assert not topology.ping("node1", HB_IP["node2"], timeout=0.5)
    assert topology.ping("node1", LAN_IP["node2"])
    topology.restore("direct")
    assert topology.cut_links == set()
    assert topology.ping("node1", HB_IP["node2"])


def test_cut_and_restore_lan_node1(topology: Topology) -> None:
    topology.cut("lan:node1")
    assert not topology.ping("client", LAN_IP["node1"], timeout=0.5)
    assert not topology.ping("node2", LAN_IP["node1"], timeout=0.5)
    assert topology.ping("client", LAN_IP["node2"])
    assert topology.ping("node1", HB_IP["node2"])  # the direct link is untouched
    topology.restore("lan:node1")
    assert topology.ping("client", LAN_IP["node1"])


def test_cut_lan_client(topology: Topology) -> None:
    topology.cut("lan:client")
    assert not topology.ping("client", LAN_IP["node1"], timeout=0.5)
    assert topology.ping("node1", LAN_IP["node2"])
    topology.restore("lan:client")
    assert topology.ping("client", LAN_IP["node2"])


def test_vip_moves_between_nodes(topology: Topology) -> None:
    vip = VIP
    topology.exec("node1", "ip", "addr", "add", f"{vip}/24", "dev", LAN_IF)
    assert topology.ping("client", vip)
    topology.exec("node1", "ip", "addr", "del", f"{vip}/24", "dev", LAN_IF)
    topology.exec("node2", "ip", "addr", "add", f"{vip}/24", "dev", LAN_IF)
    topology.exec("node2", "arping", "-q", "-U", "-c", "1", "-I", LAN_IF, vip, check=False)
    assert topology.ping("client", vip)


def test_unknown_link_and_namespace(topology: Topology) -> None:
    with pytest.raises(ValueError, match="unknown link"):
        topology.cut("lan:node3")
    with pytest.raises(ValueError, match="unknown namespace"):
        topology.exec("nodeX", "true")


def test_exec_failure_shows_output(topology: Topology) -> None:
    with pytest.raises(CommandError) as info:
        topology.exec("node1", "ip", "link", "show", "dev", "nosuchdev")
    assert "nosuchdev" in str(info.value) and "exit" in str(info.value)
    assert topology.exec("node1", "false", check=False).returncode == 1


def test_close_kills_processes_and_removes_namespaces(netns_session: None) -> None:
    require_root()
    topo = Topology()
    names = set(topo.ns.values())
    proc = topo.popen("node2", [sys.executable, "-c", "import time; time.sleep(60)"])
    # A process started behind the harness's back is killed too.
    topo.exec("node1", "sh", "-c", "sleep 60 >/dev/null 2>&1 &")
    assert names <= netns_names()
    topo.close()
    assert proc.poll() is not None
    assert not names & netns_names()
    topo.close()  # idempotent


def test_cleanup_stale_removes_leftovers_of_dead_runs(netns_session: None) -> None:
    require_root()
    # A private prefix, so that concurrent test sessions (which clean "mp-") leave ours alone.
    prefix = f"mpt{secrets.token_hex(2)}-"
    leftover = f"{prefix}{secrets.token_hex(3)}-node1"  # our pattern, no owner: a crash leftover
    unrelated = f"{prefix}xyz-node1"  # not our pattern: left alone
    for name in (leftover, unrelated):
        subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        with Topology(prefix=prefix) as live:  # its owner (this process) is alive: left alone
            assert cleanup_stale(prefix=prefix) == [leftover]
            assert set(live.ns.values()) <= netns_names()
            assert unrelated in netns_names()
            assert cleanup_stale(prefix=prefix) == []
    finally:
        for name in (leftover, unrelated):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    assert leftover not in netns_names()
