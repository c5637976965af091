"""The data plane outlives the agent (issue 13, point 1), on the two-server site.

- The agent is SIGKILLed while an application appends records with fsync through the
  module's mount: the writes go on while no agent runs, the restarted agent takes the
  data plane over (same process), the pair stays PRIM/SECOND, nothing acknowledged is
  missing from the secondary's copy. Then the agent is replaced by another build of it
  (a rolling upgrade of the agent alone): the same.
- A data plane is SIGKILLed: its module fails over as after a crash of the primary; the
  other module, in its own data plane, is untouched.
"""

from __future__ import annotations

import os
import signal

import pytest

from tests.integration.cluster_netns import APP_CHECK
from tests.integration.site import Site
from tests.integration.site_builds import Writer, never_primary, other_build, records, start_build

pytestmark = pytest.mark.root


def test_the_mount_and_the_stream_outlive_the_agent(site: Site) -> None:
    site.start()
    site.wait_pair("node1", timeout=40)
    planes = site.data_plane_pids("node1")
    assert set(planes) == {"web"}, planes
    writer = Writer(site, "node1", site.www / "records.log")
    writer.wait_more(site, 50, "records written through the mount")

    site.kill_agent("node1", data_planes=False)
    at_kill = writer.acked
    # Few: the new agent must be up within the peer's detection timeout (3 s in the
    # example config) even on a loaded machine, or the peer rightly takes over.
    writer.wait_more(site, 20, "records written while no agent runs", timeout=10)
    assert site.mounted("node1")
    site.start("node1")
    site.wait_state("node1", "PRIM", "READY", timeout=20)
    assert site.state("node2") == ("SECOND", "READY")
    assert site.data_plane_pids("node1") == planes, "the same data plane, taken over"
    text = site.agent_text("node1")
    assert "data plane (pid" in text or "taken over" in text, text[-2000:]
    writer.wait_more(site, 50, "records written after the restart")

    # The secondary's agent too: its data plane goes on receiving.
    second = site.data_plane_pids("node2")
    site.kill_agent("node2", data_planes=False)
    writer.wait_more(site, 20, "records written while node2 has no agent", timeout=10)
    site.start("node2")
    site.wait_state("node2", "SECOND", "READY", timeout=20)
    assert site.data_plane_pids("node2") == second
    assert site.state("node1") == ("PRIM", "READY")

    # A rolling upgrade of the agent alone: another build takes the data plane over.
    # The old one is told to leave its modules running (SIGUSR2) and exits at once.
    root = other_build(site)
    site.agents["node1"].send_signal(signal.SIGUSR2)
    assert site.agents["node1"].wait(10) == 0
    assert "exits leaving its modules running" in site.agent_text("node1")
    assert site.mounted("node1")
    writer.wait_more(site, 20, "records written during the upgrade", timeout=10)
    start_build(site, "node1", root)
    site.wait_state("node1", "PRIM", "READY", timeout=20)
    st = site.status("node1")
    assert st is not None and st["version"] == "0.1.1-next", st
    assert site.data_plane_pids("node1") == planes
    writer.wait_more(site, 50, "records written after the upgrade")

    last = writer.finish()
    assert last > at_kill + 200
    never_primary(site, "node2")
    assert site.state("node2") == ("SECOND", "READY")
    assert site.http() == "node1\n"
    copy = site.module_dir("node2") / "copy" / "0" / "records.log"
    got = records(copy)
    assert got[:last] == list(range(1, last + 1)), "an acknowledged record is missing"


NOTES_MODULE = """
[[module]]
name = "notes"
kind = "app"
preferred = "node1"
start = "sleep 100000 >/dev/null 2>&1 & echo $! > app.pid"
stop = {stop}
check = {check}
start_timeout_s = 10
stop_timeout_s = 10
directories = ["{base}/srv/notes"]
"""


def test_a_dead_data_plane_fails_its_module_over_and_only_it(site: Site) -> None:
    import json

    (site.base / "srv" / "notes").mkdir(parents=True)
    stop = "p=$(cat app.pid 2>/dev/null) || exit 0; kill $p; rm -f app.pid"
    site.config.write_text(site.config.read_text() + NOTES_MODULE.format(
        stop=json.dumps(stop), check=json.dumps(APP_CHECK), base=site.base))  # fmt: skip
    site.start()
    site.wait_pair("node1", timeout=40)
    site.wait_for(lambda: (site.module_named("node2", "notes") or {}).get("state")
                  == "STATE_SECOND", "notes SECOND on node2", 30)  # fmt: skip
    site.wait_module("node1", "notes", "PRIM", "READY")
    planes = site.data_plane_pids("node1")
    assert set(planes) == {"web", "notes"}, planes
    notes_app = (site.base / "node1" / "data" / "modules" / "notes" / "app.pid").read_text()
    notes = Writer(site, "node1", site.base / "srv" / "notes" / "n.log")
    notes.wait_more(site, 30, "notes written")

    os.kill(planes["web"], signal.SIGKILL)

    def node2_serves() -> bool:  # ALONE/READY -- or PRIM already, if node1's new data plane
        m = site.module_named("node2", "web") or {}  # was back as secondary by then
        return m.get("state") in ("STATE_ALONE", "STATE_PRIM") and m.get("readiness") == (
            "READINESS_READY"
        )

    site.wait_for(node2_serves, "web served by node2", 30)
    assert any("taking over" in e.get("message", "") for e in site.logs_of("node2", "web"))
    site.wait_for(lambda: site.http() == "node2\n", "the VIP serves node2", 30)
    # node1 restarted the web data plane and follows as secondary once resynced.
    site.wait_module("node1", "web", "SECOND", "READY", timeout=60)
    site.wait_module("node2", "web", "PRIM", "READY", timeout=30)
    assert site.data_plane_pids("node1")["web"] != planes["web"]

    # The other module did not notice: same data plane, same application, still writing.
    assert site.data_plane_pids("node1")["notes"] == planes["notes"]
    assert (site.base / "node1" / "data" / "modules" / "notes" / "app.pid").read_text() == notes_app
    assert site.module_named("node1", "notes")["state"] == "STATE_PRIM"  # type: ignore[index]
    notes.wait_more(site, 30, "notes still written")
    last = notes.finish()
    copy = site.base / "node2" / "data" / "modules" / "notes" / "copy" / "0" / "n.log"
    assert records(copy)[:last] == list(range(1, last + 1))
    logs = site.logs_of("node1", "web")
    assert any("data plane died" in e.get("message", "") for e in logs), logs[-5:]
