"""Split-brain recovery on a real two-server site (issue 10, point 8; DESIGN §3): when the
operator keeps the copy that waits, the old survivor, started again, does the last step
by itself -- its own changes to quarantine, then a resync -- and once the pair is back
neither node is badged degraded or split brain."""

from __future__ import annotations

import pytest

from tests.integration.cluster_netns import MODULE
from tests.integration.netns import LAN_IP
from tests.integration.site import Site

pytestmark = pytest.mark.root

STEP_S = 30.0  # peer timeout (3 s), mounts, application start, with room for load


def put(site: Site, node: str, name: str, text: str) -> None:
    site.sh(node, f"printf '%s' '{text}' > {site.www / name} && sync")


def partition(site: Site, cut: bool) -> None:
    """node1 and node2 lose each other on every network; both still reach the client
    (the witness), so both may serve: the split brain a witness cannot prevent."""
    action = "add" if cut else "del"
    for node, other in (("node1", "node2"), ("node2", "node1")):
        site.topo.exec(node, "ip", "route", action, "blackhole", f"{LAN_IP[other]}/32")
    (site.topo.cut if cut else site.topo.restore)("direct")


def make_split_brain(site: Site) -> None:
    """Both serve and write while partitioned; node1, primary first (and degraded: its
    replication failed), serves on; node2 waits in split brain."""
    site.start()
    site.wait_pair("node1", timeout=40)
    put(site, "node1", "common.txt", "before the split")
    partition(site, True)
    site.wait_state("node2", "ALONE", "READY", via="node2", timeout=STEP_S)
    m1 = site.wait_state("node1", "ALONE", "READY", via="node1", timeout=STEP_S)
    assert m1["degraded"], m1
    put(site, "node1", "common.txt", "A: written by node1")
    put(site, "node1", "only-a.txt", "A")
    put(site, "node2", "common.txt", "B: written by node2")
    put(site, "node2", "only-b.txt", "B")
    partition(site, False)
    m2 = site.wait_state("node2", "WAIT", "NOT_READY", timeout=STEP_S)
    assert m2["split_brain"], m2
    site.wait_state("node1", "ALONE", "READY", timeout=STEP_S)  # primary first


def test_keeping_the_waiting_copy_needs_no_second_on_the_old_survivor(site: Site) -> None:
    make_split_brain(site)
    # The route the message gives: stop the serving node, force this one primary (node1's
    # agent keeps running: what it remembers, "degraded" included, must not outlive it).
    assert "then `prim` here" in site.module("node2")["reason"]
    assert site.cli("stop", MODULE, "--node", "node1", "--yes").returncode == 0
    site.wait_state("node1", "STOP", timeout=STEP_S)
    r = site.cli("prim", MODULE, "--node", "node2", "--yes")
    assert r.returncode == 0 and "kept over the peer's copy" in r.stdout + r.stderr, r
    site.wait_state("node2", "ALONE", "READY", timeout=STEP_S)
    # ...and start the old survivor: nobody runs `second` there.
    assert site.cli("start", MODULE, "--node", "node1").returncode == 0
    site.wait_state("node1", "SECOND", "READY", timeout=60)
    m1, m2 = site.wait_state("node2", "PRIM", "READY", timeout=STEP_S), site.module("node1")
    assert m2 is not None
    for m in (m1, m2):
        assert not m["degraded"] and not m["split_brain"], m
    assert any(e["cause"] == "survivor-chosen" for e in site.logs("node1"))
    copy1 = site.module_dir("node1") / "copy" / "0"
    assert (copy1 / "common.txt").read_text() == "B: written by node2"
    assert (copy1 / "only-b.txt").exists() and not (copy1 / "only-a.txt").exists()
    quarantine = site.module_dir("node1") / "quarantine"
    kept = {p.name: p.read_text() for p in quarantine.glob("*/copy/0/*")}
    assert kept.get("common.txt") == "A: written by node1" and kept.get("only-a.txt") == "A"
