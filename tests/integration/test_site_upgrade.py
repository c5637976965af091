"""A rolling upgrade on the two-server site (issue 14, point 7; docs/upgrade.md).

node1 runs the previous release (its code taken from git at ``PREVIOUS_RELEASE``, run
with this venv), node2 this tree: they pair, the module is PRIM/SECOND and replicates
while an application appends records with fsync through node1's mount. node2 shows that
its peer runs an older build. Then node1 is upgraded the documented way: its old agent
is told to leave its modules running (SIGUSR2), the new build starts and adopts the old
build's data plane. The module stays PRIM on node1 and SECOND on node2 throughout, the
writes never stop or fail, nothing acknowledged is missing from node2's copy, and each
side shows the other's build while they differ.
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
from tests.conftest import require
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


def _previous_build(site: Site) -> Path:
    """The previous release's agent code (node_agent and protos, generated code included)."""
    commit = f"{PREVIOUS_RELEASE}^{{commit}}"
    found = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", commit], capture_output=True)
    require(found.returncode == 0, f"needs git history with commit {PREVIOUS_RELEASE} "
                                   "(the previous release; a shallow clone lacks it)")  # fmt: skip
    tar = subprocess.run(["git", "-C", str(REPO), "archive", PREVIOUS_RELEASE, "node_agent",
                          "protos"], capture_output=True, check=True).stdout  # fmt: skip
    root = site.base / "build-previous"
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(root, filter="data")
    return root


def _pair_holds(site: Site) -> None:
    assert site.state("node1") == ("PRIM", "READY"), site.tail("node1")
    assert site.state("node2") == ("SECOND", "READY"), site.tail("node2")


def test_a_rolling_upgrade_keeps_the_module_prim_second(site: Site) -> None:
    previous = _previous_build(site)
    start_build(site, "node1", previous, "previous release")
    site.start("node2")
    site.wait_pair("node1", timeout=40)
    planes = site.data_plane_pids("node1")
    assert set(planes) == {"web"}, planes
    writer = Writer(site, "node1", site.www / "records.log")
    writer.wait_more(site, 50, "records written through node1's mount")

    # Mixed: the previous release replicates to this one; node2 says its peer is older.
    st2 = site.status("node2")
    assert st2 is not None
    assert (st2["protocol"], st2["peer_protocol"]) == (str(PROTOCOL), str(PREVIOUS_PROTOCOL))
    assert st2["peer_version"] == "" and not st2["peer_incompatible"]
    assert "the peer runs an older build that does not say its version" in st2["version_mismatch"]
    text = site.cli("status").stdout
    assert "VERSION MISMATCH seen by node2: the peer runs an older build" in text, text
    writer.wait_more(site, 30, "records replicated to this build")
    _pair_holds(site)

    # The upgrade of node1, the primary: the old agent leaves its modules running...
    site.agents["node1"].send_signal(signal.SIGUSR2)
    assert site.agents["node1"].wait(10) == 0
    assert "exits leaving its modules running" in site.agent_text("node1")
    writer.wait_more(site, 20, "records written while node1 has no agent", timeout=10)
    # ... and the new build adopts the previous release's data plane.
    start_build(site, "node1", other_build(site, NEXT), "upgraded")
    site.wait_state("node1", "PRIM", "READY", timeout=20)
    _pair_holds(site)
    assert site.data_plane_pids("node1") == planes, "the same data plane, adopted"
    web = site.module_named("node1", "web")
    assert web is not None and web["data_plane"]["pid"] == planes["web"]
    writer.wait_more(site, 50, "records written after the upgrade")

    # Both builds differ and say so, as compatible, from each side.
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
    never_primary(site, "node2")
    assert site.http() == "node1\n"
    copy = site.module_dir("node2") / "copy" / "0" / "records.log"
    assert records(copy)[:last] == list(range(1, last + 1)), "an acknowledged record is missing"
