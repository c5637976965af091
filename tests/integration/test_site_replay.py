"""Heartbeat replays are refused across restarts of the receiver (issue 10, point 3; DESIGN
§4): someone on the heartbeat links records node2's heartbeats; node2 dies; node1's agent
restarts while the recording is played back from node2's addresses. The restarted node1
must see through it: peer silent, serve alone, as if nobody replayed anything."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.cluster_netns import REPO
from tests.integration.site import Site

pytestmark = pytest.mark.root

RECORD_S = 15.0  # node2's heartbeats recorded: the replay keeps "node2" talking this long
HB_PORT = 7701  # the example config's heartbeat port


def test_a_replay_at_a_restarted_agent_changes_nothing(site: Site) -> None:
    site.start()
    site.wait_pair("node1", timeout=40)
    record = site.base / "node2-heartbeats.jsonl"
    rec = site.topo.popen("node1", [sys.executable, "-m", "tests.integration.hb_capture",
                                    "capture", record, str(RECORD_S), str(HB_PORT)],
                          cwd=REPO, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert rec.communicate(timeout=RECORD_S + 30)[0].strip() == "captured"
    recorded = [json.loads(line) for line in record.read_text().splitlines()]
    assert {r["src"] for r in recorded} == {"10.77.0.2", "10.78.0.2"}, "both links recorded"
    assert len(recorded) >= 2 * RECORD_S / 0.5 * 0.8, len(recorded)

    site.kill_agent("node2")  # node2 dies (its links stay: the attacker sends on them)
    site.kill_app("node2")
    site.wait_state("node1", "ALONE", "READY", timeout=20)
    site.kill_agent("node1")
    replay = site.topo.popen("node2", [sys.executable, "-m", "tests.integration.hb_capture",
                                       "replay", record], cwd=REPO, stdout=subprocess.PIPE,
                             text=True)  # fmt: skip
    site.start("node1")
    # Peer silent for the detection timeout (3 s), then alone -- while the replay still
    # runs (it ends RECORD_S after it began).
    site.wait_state("node1", "ALONE", "READY", timeout=RECORD_S - 5)
    assert replay.poll() is None, "the replay ended before node1 served: nothing was shown"
    status = site.status("node1")
    assert status is not None and not status["peer_alive"], status
    assert all(not link["up"] for link in status["links"]), status["links"]
    assert site.http() == "node1\n"
    assert replay.communicate(timeout=RECORD_S + 10)[0].strip() == "done"
    assert site.state("node1") == ("ALONE", "READY")
