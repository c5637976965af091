"""A rolling upgrade on the two-server site (issue 14, point 7; docs/upgrade.md).

node1 runs this tree and is primary, node2 the previous release (its code taken from git
at ``PREVIOUS_RELEASE``, run with this venv) and is secondary: they pair and replicate
while an application appends records with fsync through node1's mount; node1 shows that
its peer runs an older build. node2 is upgraded the documented way: its old agent leaves
its modules running (SIGUSR2), this build starts and adopts the old build's data plane.
Then node1, the primary, is upgraded to a next build (a copy of this tree reporting
another version): its agent asks node2 to wait for the next one. The module stays PRIM
on node1 and SECOND on node2 throughout, the writes never stop or fail, nothing
acknowledged is missing from node2's copy, and each side shows the other's build while
they differ.
"""

from __future__ import annotations

import io
import signal
import subprocess
import tarfile
from pathlib import Path

import pytest

from node_agent import VERSION
from node_agent.protocol import PROTOCOL, UNVERSIONED
from tests.conftest import require, require_binary
from tests.integration.cluster_netns import REPO
from tests.integration.site import Site
from tests.integration.site_builds import Writer, never_primary, other_build, records, start_build

pytestmark = pytest.mark.root

# The last release before this one: version N of "N and N+1 run side by side". At each
# release, set it to the commit of the release before (`git rev-parse vX.Y.Z^{commit}`);
# it must be in main's history (CI clones main with its whole history). This one is the
# last commit before the protocol was versioned (1.0, it announces nothing; VERSION 0.1.0).
PREVIOUS_RELEASE = "10fc71e5779adf8275db87dd61daca38582d0f74"
PREVIOUS_PROTOCOL = UNVERSIONED
NEXT = "0.2.0-upgrade-test"  # the version the upgraded build reports (a copy of this tree)
TIMEOUT_S = 3.0  # the example configuration's heartbeat timeout_ms, which the site uses


def _previous_build(site: Site) -> Path:
    """The previous release's agent code (node_agent and protos, generated code included)."""
    git = require_binary("git")
    commit = f"{PREVIOUS_RELEASE}^{{commit}}"
    found = subprocess.run([git, "-C", str(REPO), "cat-file", "-e", commit], capture_output=True)
    require(found.returncode == 0, f"needs git history with commit {PREVIOUS_RELEASE} "
                                   "(the previous release; a shallow clone lacks it)")  # fmt: skip
    tar = subprocess.run([git, "-C", str(REPO), "archive", PREVIOUS_RELEASE, "node_agent",
                          "protos"], capture_output=True, check=True).stdout  # fmt: skip
    root = site.base / "build-previous"
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(root, filter="data")
    return root


def _pair_holds(site: Site) -> None:
    assert site.state("node1") == ("PRIM", "READY"), site.tail("node1")
    assert site.state("node2") == ("SECOND", "READY"), site.tail("node2")


def _transitions(site: Site, node: str) -> list[str]:
    """The module's state changes in ``node``'s agent output, every agent of it."""
    text = site.out_path(node).read_text(errors="replace")
    return [line.split("web: ", 1)[1] for line in text.splitlines() if " -> " in line
            and "mirrorpair.log: web: " in line]  # fmt: skip


def _upgrade(site: Site, node: str, root: Path, slow_start: bool = False) -> None:
    """The documented way (docs/upgrade.md): the running agent leaves its modules running
    (SIGUSR2), the new build starts and adopts its data planes. ``slow_start``: the new
    agent starts only once the peer has heard nothing for longer than the heartbeat
    timeout (the old agent asked it to wait: it must still count this node alive)."""
    planes = site.data_plane_pids(node)
    site.agents[node].send_signal(signal.SIGUSR2)
    assert site.agents[node].wait(10) == 0
    assert "exits leaving its modules running" in site.agent_text(node)
    if slow_start:
        peer = "node2" if node == "node1" else "node1"

        def silent_too_long() -> dict | None:
            st = site.status(peer)
            ages = [link["last_heard_age_s"] for link in st["links"]] if st else [0]
            return st if min(ages) > TIMEOUT_S else None

        st = site.wait_for(silent_too_long, f"{node} silent for over {TIMEOUT_S} s", 15)
        assert st["peer_alive"], "the peer was asked to wait for the next agent"
        # ... and says so: alive on its word, for a while, not on heartbeats.
        assert 0 < st["peer_leaving_s"] < 20, st
        assert site.state(peer) == (("SECOND" if peer == "node2" else "PRIM"), "READY")
    start_build(site, node, root, f"upgraded to {root.name}")
    assert site.data_plane_pids(node) == planes, "the same data planes, adopted"


def test_a_rolling_upgrade_keeps_the_module_prim_second(site: Site) -> None:
    # node1 runs this build and is primary; node2, the secondary, runs the previous release.
    previous = _previous_build(site)
    start_build(site, "node1", REPO, "this build")
    start_build(site, "node2", previous, "previous release")
    site.wait_pair("node1", timeout=40)
    writer = Writer(site, "node1", site.www / "records.log")
    writer.wait_more(site, 50, "records replicated to the previous release")

    # Mixed: node1 says its peer runs an older build, compatible; the status shows it.
    st1 = site.status("node1")
    assert st1 is not None
    assert (st1["protocol"], st1["peer_protocol"]) == (str(PROTOCOL), str(PREVIOUS_PROTOCOL))
    assert st1["peer_version"] == "" and not st1["peer_incompatible"]
    assert "the peer runs an older build that does not say its version" in st1["version_mismatch"]
    text = site.cli("status").stdout
    assert "VERSION MISMATCH seen by node1: the peer runs an older build" in text, text
    _pair_holds(site)

    # The upgrade of node2 from the previous release to this build: its data plane, of the
    # previous release, is adopted by this build and goes on receiving.
    _upgrade(site, "node2", REPO)
    site.wait_state("node2", "SECOND", "READY", timeout=20)
    writer.wait_more(site, 50, "records written after node2's upgrade")
    _pair_holds(site)
    web = site.module_named("node2", "web")
    assert web is not None and web["data_plane"]["version"] == VERSION  # the previous build's
    st1, st2 = site.status("node1"), site.status("node2")
    assert st1 is not None and st2 is not None
    assert st1["version_mismatch"] == st2["version_mismatch"] == ""  # the same build now

    # node1, the primary, to the next build: its agent tells node2 to wait for the next one.
    _upgrade(site, "node1", other_build(site, NEXT), slow_start=True)
    site.wait_state("node1", "PRIM", "READY", timeout=20)
    writer.wait_more(site, 50, "records written after node1's upgrade")
    _pair_holds(site)
    assert "the agent of node1 exits leaving its modules running" in site.agent_text("node2")
    st1, st2 = site.status("node1"), site.status("node2")
    assert st1 is not None and st2 is not None
    assert st1["version"] == NEXT and st1["peer_version"] == VERSION
    assert st2["peer_version"] == NEXT and st2["peer_protocol"] == str(PROTOCOL)
    for st in (st1, st2):
        assert "compatible" in st["version_mismatch"] and not st["peer_incompatible"]
    text = site.cli("status").stdout
    assert f"VERSION MISMATCH seen by node1: the peer runs {VERSION}" in text, text
    assert f"VERSION MISMATCH seen by node2: the peer runs {NEXT}" in text, text

    last = writer.finish()
    _pair_holds(site)
    # Throughout: node1 never left the primary role, node2 never took it.
    never_primary(site, "node2")
    assert not [
        t
        for t in _transitions(site, "node1")
        if t.startswith(("PRIM", "ALONE")) and " -> PRIM" not in t and " -> ALONE" not in t
    ], _transitions(site, "node1")
    assert site.http() == "node1\n"
    copy = site.module_dir("node2") / "copy" / "0" / "records.log"
    assert records(copy)[:last] == list(range(1, last + 1)), "an acknowledged record is missing"


def test_a_peer_of_an_incompatible_protocol_is_refused_and_shown(site: Site) -> None:
    # A build of the next major protocol (a copy of this tree that says so), modules not
    # started: two agents that cannot hear each other would both serve them.
    site.config.write_text(site.config.read_text().replace("autostart = true", "autostart = false"))
    future = other_build(site, "9.0.0")
    protocol_py = future / "node_agent" / "protocol.py"
    text = protocol_py.read_text()
    ours = f"PROTOCOL = Protocol({PROTOCOL.major}, {PROTOCOL.minor})"
    assert ours in text, "node_agent/protocol.py no longer defines PROTOCOL this way"
    other = f"{PROTOCOL.major + 1}.0"
    protocol_py.write_text(text.replace(ours, f"PROTOCOL = Protocol({PROTOCOL.major + 1}, 0)"))
    start_build(site, "node1", REPO, "this build")
    start_build(site, "node2", future, "next major")

    def refused(node: str) -> dict | None:
        st = site.status(node)
        return st if st is not None and st["peer_incompatible"] else None

    st1 = site.wait_for(lambda: refused("node1"), "node1 refuses node2", 20)
    assert st1["peer_protocol"] == other and st1["peer_version"] == "9.0.0"
    assert not st1["peer_alive"] and "are refused" in st1["version_mismatch"]
    assert int(st1["heartbeats_rejected"]) > 0  # a uint64: a string in JSON
    st2 = site.wait_for(lambda: refused("node2"), "node2 refuses node1", 20)
    assert st2["peer_protocol"] == str(PROTOCOL) and not st2["peer_alive"]
    line = f"ERROR node_agent.heartbeat.udp: peer node2: the peer speaks protocol {other}"
    assert line in site.agent_text("node1")
    assert site.agent_text("node1").count("peer node2: the peer speaks") == 1  # not per pulse
    text = site.cli("status").stdout
    assert (
        f"PROTOCOL MISMATCH seen by node1: the peer speaks protocol {PROTOCOL.major + 1}.0" in text
    )
    assert "PROTOCOL MISMATCH seen by node2" in text, text
