"""Failover with real agents on two network namespaces (issue 2; DESIGN §3, §4, §10).

Every test runs two ``mirrorpair-agent`` processes in node1/node2 namespaces joined by
the LAN bridge and the direct ``hb0`` link, checks the VIP from the client namespace,
and drives the cluster through the real ``mirrorpair`` CLI. Waits are bounded polls;
where a test must show that something does NOT happen it watches for a hold window of
two heartbeat timeouts (the only way to observe an absence). Timing goes to
benchmarks/failover.py, not here.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.integration.cluster_netns import MODULE, TIMEOUT_MS, NetnsCluster
from tests.integration.netns import Topology

pytestmark = pytest.mark.root

TIMEOUT_S = TIMEOUT_MS / 1000
START_BUDGET_S = 5.0  # app start (~0.2 s here) + VIP + gratuitous ARP, with room for load
FAILOVER_DEADLINE_S = TIMEOUT_S + START_BUDGET_S
HOLD_S = 2 * TIMEOUT_S  # watch this long when asserting nothing changes

MakeCluster = Callable[..., NetnsCluster]


@pytest.fixture
def make_cluster(topology: Topology, tmp_path: Path) -> Iterator[MakeCluster]:
    require_binary("ping")
    require_binary("arping")  # without gratuitous ARP the client keeps the dead node's MAC
    made: list[NetnsCluster] = []

    def make(**kw: object) -> NetnsCluster:
        c = NetnsCluster(topology, tmp_path / "cluster", **kw)  # type: ignore[arg-type]
        made.append(c)
        c.start()
        c.wait_pair("node1")
        return c

    yield make
    for c in made:
        c.close()


def hold(c: NetnsCluster, what: str, check: Callable[[], object], seconds: float = HOLD_S) -> None:
    """Assert ``check()`` stays truthy for ``seconds`` (polled)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert check(), f"{what} stopped holding\n{c.tail('node1')}\n{c.tail('node2')}"
        time.sleep(0.1)


def transitions(c: NetnsCluster, node: str, via: str = "client", since: float = 0) -> list[str]:
    """New states of the node's logged transitions (wall time >= since), e.g. ["WAIT", "PRIM"]."""
    return [
        e["new_state"].removeprefix("STATE_")
        for e in c.logs(node, via)
        if e["new_state"] != "STATE_UNSPECIFIED" and e["time"] >= since
    ]


def test_kill9_of_primary_agent_and_app_secondary_serves_alone(make_cluster: MakeCluster):
    c = make_cluster()
    c.power_off("node1")
    # The deadline is the requirement: peer timeout + app start time.
    c.wait_for(lambda: c.http() == "node2\n", "the VIP answering from node2", FAILOVER_DEADLINE_S)
    m = c.wait_state("node2", "ALONE", "READY", timeout=1)
    assert m["last_rule"] == "peer-lost"
    assert m["vip_held"] and m["resource_running"]
    assert c.vip_on("node2")  # (node1's lan0 still has it, but that port is dead)


def test_an_agent_restart_leaves_an_application_serving(make_cluster: MakeCluster):
    """SIGUSR2 (a restart or upgrade of the agent alone, docs/upgrade.md): the next agent
    takes up the module its predecessor served -- the same application process, the
    VIP kept -- with no data plane to ask (the module is not replicated)."""
    c = make_cluster()
    pid = c.app_pid("node1")
    assert pid and c.app_running("node1")
    since = time.time()
    c.agents["node1"].send_signal(signal.SIGUSR2)
    assert c.agents["node1"].wait(10) == 0
    c.start("node1")
    m = c.wait_state("node1", "PRIM", "READY", timeout=15)
    assert c.app_pid("node1") == pid and c.app_running("node1"), c.tail("node1")
    assert m["vip_held"] and c.http() == "node1\n"
    hold(c, "node1 PRIM, node2 SECOND", lambda: c.state("node1") == ("PRIM", "READY")
         and c.state("node2") == ("SECOND", "READY"))  # fmt: skip
    # STOP -> PRIM/TRANSIENT [adopted] -> PRIM/READY: never WAIT, never a start.
    assert set(transitions(c, "node1", since=since)) == {"PRIM"}, c.tail("node1")
    assert "PRIM" not in transitions(c, "node2", since=since)
    assert "ALONE" not in transitions(c, "node2", since=since)
    assert "taken over from the previous agent" in c.tail("node1", 60)


def test_returning_node_comes_back_second(make_cluster: MakeCluster):
    c = make_cluster()
    c.power_off("node1")
    c.wait_state("node2", "ALONE", "READY", timeout=FAILOVER_DEADLINE_S)
    back = time.time()  # the module log keeps node1's entries from before (its PRIM)
    c.power_on("node1")
    c.wait_state("node1", "SECOND", "READY")
    c.wait_state("node2", "PRIM", "READY")
    # The returning node joined as secondary without ever serving.
    since_back = transitions(c, "node1", since=back)
    assert since_back and "ALONE" not in since_back and "PRIM" not in since_back, since_back
    assert c.http() == "node2\n"
    assert not c.vip_on("node1") and not c.app_running("node1")


def test_one_heartbeat_link_cut_is_no_failover(make_cluster: MakeCluster):
    c = make_cluster()

    def link_up(node: str, link: str, via: str) -> bool | None:
        st = c.status(node, via)
        return st and next(x["up"] for x in st["links"] if x["name"] == link)

    def pair_intact(second_via: str) -> bool:
        return c.state("node1") == ("PRIM", "READY") and c.state("node2", second_via) == (
            "SECOND",
            "READY",
        )

    c.topo.cut("direct")
    c.wait_for(lambda: link_up("node1", "direct", "client") is False, "direct seen down", 10)
    assert c.status("node1")["peer_alive"]
    hold(c, "PRIM/SECOND with the direct link cut", lambda: pair_intact("client"))
    assert c.http() == "node1\n"

    c.topo.restore("direct")
    c.wait_for(lambda: link_up("node1", "direct", "client"), "direct up again", 10)
    c.topo.cut("lan:node2")  # node2 now hears node1 on hb0 only
    c.wait_for(lambda: link_up("node2", "lan", "node2") is False, "lan seen down", 10)
    hold(c, "PRIM/SECOND with node2's LAN cut", lambda: pair_intact("node2"))
    assert c.http() == "node1\n" and not c.vip_on("node2")


def test_both_links_cut_witness_only_from_node2(make_cluster: MakeCluster):
    c = make_cluster(witness=True)
    assert c.status("node1")["witness_reachable"] and c.status("node2")["witness_reachable"]
    cut_at = time.time()
    c.topo.cut("direct")
    c.topo.cut("lan:node1")  # node1 loses node2 AND the witness (10.77.0.254)
    c.wait_for(lambda: c.http() == "node2\n", "the VIP answering from node2", FAILOVER_DEADLINE_S)
    c.wait_state("node2", "ALONE", "READY", timeout=1)
    m = c.wait_state("node1", "WAIT", "NOT_READY", via="node1", timeout=FAILOVER_DEADLINE_S)
    assert m["last_rule"] == "witness" and not m["resource_running"] and not m["vip_held"]
    assert not c.vip_on("node1")
    # Never served after the cut: a stray ALONE would fork the data (split brain later).
    after_cut = transitions(c, "node1", via="node1", since=cut_at)
    assert "WAIT" in after_cut and "ALONE" not in after_cut, after_cut
    hold(c, "node1 not serving", lambda: c.state("node1", "node1") == ("WAIT", "NOT_READY"))

    c.topo.restore("lan:node1")
    c.topo.restore("direct")
    c.wait_state("node1", "SECOND", "READY")  # node2's copy is newer: node1 resyncs from it
    c.wait_state("node2", "PRIM", "READY")


def test_witness_unreachable_from_both_neither_serves(make_cluster: MakeCluster):
    c = make_cluster(witness=True)
    for link in ("direct", "lan:node1", "lan:node2"):
        c.topo.cut(link)
    for node in ("node1", "node2"):
        m = c.wait_state(node, "WAIT", "NOT_READY", via=node, timeout=FAILOVER_DEADLINE_S)
        assert m["last_rule"] == "witness", m

    def nobody_serves() -> bool:
        return all(
            c.state(n, n) == ("WAIT", "NOT_READY") and not c.vip_on(n) and not c.app_running(n)
            for n in ("node1", "node2")
        )

    c.wait_for(nobody_serves, "resources and VIPs released", 10)
    hold(c, "neither node serving", nobody_serves)


def test_swap_exchanges_roles(make_cluster: MakeCluster):
    c = make_cluster()
    r = c.cli("swap", MODULE, "--node", "node1", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    c.wait_pair("node2")
    assert not c.vip_on("node1") and not c.app_running("node1")
    assert c.cli("state", MODULE, "--node", "node2").returncode == 3  # PRIM
    assert c.cli("state", MODULE, "--node", "node1").returncode == 4  # SECOND


def test_stop_on_primary_secondary_takes_over(make_cluster: MakeCluster):
    c = make_cluster()
    r = c.cli("stop", MODULE, "--node", "node1", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    c.wait_state("node1", "STOP", "NOT_READY")
    c.wait_state("node2", "ALONE", "READY")
    c.wait_for(lambda: c.http() == "node2\n", "the VIP answering from node2", 10)
    assert c.cli("state", MODULE, "--node", "node1").returncode == 0  # STOP
    assert c.cli("state", MODULE, "--node", "node2").returncode == 2  # ALONE
    assert not c.vip_on("node1") and not c.app_running("node1")


def test_prim_forces_a_node_that_is_not_up_to_date(make_cluster: MakeCluster):
    c = make_cluster()
    c.kill_agent("node2")  # dies as SECOND: its copy is no longer known to be current
    c.wait_state("node1", "ALONE", "READY", timeout=FAILOVER_DEADLINE_S)
    c.power_off("node1")  # ... and then the primary dies too
    c.start("node2")
    m = c.wait_state("node2", "WAIT", "NOT_READY", timeout=TIMEOUT_S + 10)
    assert "may not be up to date" in m["reason"] and not m["uptodate"], m
    # node1 is dead: a short per-agent timeout keeps the CLI from waiting 5 s for it.
    assert c.cli("--timeout", "2", "state", MODULE, "--node", "node2").returncode == 1  # WAIT
    assert c.http() is None and not c.vip_on("node2")

    r = c.cli("--timeout", "2", "prim", MODULE, "--node", "node2", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    m = c.wait_state("node2", "ALONE", "READY")
    assert m["last_rule"].startswith("prim by ") and "admin" in m["last_rule"], m
    c.wait_for(lambda: c.http() == "node2\n", "the VIP answering from node2", 10)
    forced = [e for e in c.logs("node2") if e["cause"] == "prim"]
    assert forced and all("cert admin" in e["who"] for e in forced), forced
    assert any("NOT up to date" in e["message"] for e in forced), forced
    r = c.cli("--timeout", "2", "log", MODULE, "--node", "node2")
    assert r.returncode == 0 and "forced primary" in r.stdout and "admin" in r.stdout, r.stdout


def test_checker_failure_restarts_up_to_maxloop_then_fails_over(make_cluster: MakeCluster):
    c = make_cluster(maxloop=2)
    for n in (1, 2):  # kill the app: the process checker restarts it locally
        old = c.kill_app("node1")

        def restarted(old: int | None = old) -> bool:
            pid = c.app_pid("node1")
            return pid is not None and pid != old and c.state("node1") == ("PRIM", "READY")

        c.wait_for(restarted, f"local restart {n}", 10)
        assert c.state("node2") == ("SECOND", "READY")
        assert c.http() == "node1\n"
    c.kill_app("node1")  # a third failure within loop_interval_s: fail over
    # stopstart: node2 takes over (ALONE), node1 starts again and joins as secondary.
    c.wait_pair("node2", timeout=15)
    assert "ALONE" in transitions(c, "node2")
    messages = [e["message"] for e in c.logs("node1")]
    for text in ("local restart 1/2", "local restart 2/2", "maxloop (2) reached"):
        assert any(text in m for m in messages), (text, messages)
