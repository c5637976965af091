"""A virtual IP is only where the module is served (issue 10, point 1; DESIGN §6): a
SIGKILLed agent leaves its VIP (and its application) behind with the OS up; once the agent
restarts it removes both, and whenever the interfaces disagree with what the node serves,
the agent corrects them and the status reports what the interfaces really hold."""

from __future__ import annotations

import pytest

from tests.integration.netns import LAN_IF, VIP_CIDR
from tests.integration.site import Site

pytestmark = pytest.mark.root

FAILOVER_S = 3.0 + 15.0  # the example's timeout_ms, then mount, VIP and application start


def vip_held(site: Site, node: str) -> bool:
    m = site.module(node)
    assert m is not None, f"{node} does not answer"
    return bool(m["vip_held"])


def logged(site: Site, node: str, text: str) -> bool:
    return any(text in e["message"] for e in site.logs(node))


def test_a_sigkilled_primary_leaves_no_vip_behind_once_its_agent_restarts(site: Site) -> None:
    site.start()
    site.wait_pair("node1", timeout=40)
    site.kill_agent("node1")  # the OS stays up: its application and its VIP stay too
    assert site.vip_on("node1") and site.app_running("node1")
    site.wait_state("node2", "ALONE", "READY", timeout=FAILOVER_S)
    assert site.vip_on("node2")

    site.start("node1")
    site.wait_state("node1", "SECOND", "READY", timeout=60)
    assert not site.vip_on("node1"), "the restarted agent left the VIP on its interface"
    assert not site.app_running("node1"), "the restarted agent left the application running"
    assert logged(site, "node1", f"virtual IP {VIP_CIDR} was left on {LAN_IF} by an earlier run")
    assert logged(site, "node1", "the app resource was left running by an earlier run")
    assert (vip_held(site, "node1"), vip_held(site, "node2")) == (False, True)
    for _ in range(10):  # every client request now reaches the node that serves
        assert site.http() == "node2\n"
    status = site.cli("status", "--json")
    assert status.returncode == 0, status.stderr


def test_the_status_reports_what_the_interfaces_hold_and_drift_is_undone(site: Site) -> None:
    site.start()
    site.wait_pair("node1", timeout=40)
    # Someone adds the VIP on the secondary by hand: it is seen, reported, and removed.
    site.topo.exec("node2", "ip", "addr", "add", VIP_CIDR, "dev", LAN_IF)
    site.wait_for(lambda: logged(site, "node2", "found on lan0 where the module is not served"),
                  "node2 noticing the stray VIP", 10)  # fmt: skip
    site.wait_for(lambda: not site.vip_on("node2") and not vip_held(site, "node2"),
                  "node2 removing the stray VIP", 10)  # fmt: skip
    # ...and removes it from the primary: it is added back, and reported held meanwhile.
    site.topo.exec("node1", "ip", "addr", "del", VIP_CIDR, "dev", LAN_IF)
    site.wait_for(lambda: logged(site, "node1", "missing from lan0 where the module is served"),
                  "node1 noticing the missing VIP", 10)  # fmt: skip
    site.wait_for(lambda: site.vip_on("node1") and vip_held(site, "node1"),
                  "node1 holding its VIP again", 10)  # fmt: skip
    site.wait_for(lambda: site.http() == "node1\n", "the VIP answering from node1", 10)
