"""A planned stop of the standby server (its agent stopped cleanly, e.g. for maintenance),
in network namespaces: the primary's application goes on writing, without waiting for a
heartbeat timeout, and nothing it was told is written goes missing.

Stopping the secondary breaks the primary's stream; the primary holds its writes until
the secondary promises not to serve its copy (the outdate handshake, core/write_gate.py).
Before, the stopping agent exited before the primary asked: every fsync on the primary
then waited for the peer-loss timeout (3.0 s measured with the default 3 s)."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import require, require_binary
from tests.integration.cluster_netns import TIMEOUT_MS, NetnsCluster
from tests.integration.netns import Topology
from tests.integration.repl_netns import ReplCluster, Writer, check_log

pytestmark = pytest.mark.root

FAILOVER_S = TIMEOUT_MS / 1000 + 10.0


def test_a_clean_stop_of_the_secondary_releases_the_held_writes_before_it_exits(
    topology: Topology, tmp_path: Path
) -> None:
    require(os.path.exists("/dev/fuse"), "needs /dev/fuse (apt-get install fuse3)")
    for binary in ("fusermount3", "nsenter", "ping", "arping"):
        require_binary(binary)
    c = ReplCluster(topology, tmp_path / "cluster")
    try:
        c.start()
        c.wait_pair("node1", timeout=30)
        w = Writer(c, c.mnt("node1") / "w.dat", tmp_path / "w.log")
        c.wait_for(lambda: w.acked() > 20, "the writer writing through node1's mount", 30)

        assert c.stop_agent("node2") == 0
        c.wait_state("node1", "ALONE", "READY", timeout=FAILOVER_S)
        n = w.acked()
        c.wait_for(lambda: w.acked() > n + 20, "the writer going on alone", 30)
        assert w.stop() == 0 and not w.errors(), w.errors()

        # The primary released its held writes on node2's promise, while node2's agent
        # still ran -- not on node2's silence, a heartbeat timeout after it exited. The
        # release's time is the data plane's own line, written before it answered the
        # agent (whose heartbeat then let node2 go): causally before node2's exit.
        dp1 = (c.module_dir("node1") / "dataplane" / "dataplane.log").read_text()
        released = [datetime.strptime(ln[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                    for ln in dp1.splitlines() if "acknowledged (tracked)" in ln]  # fmt: skip
        node2_log = c.base / "node2" / "data" / "module-log.jsonl"
        records = [json.loads(ln) for ln in node2_log.read_text().splitlines()]
        exited = [r["time"] for r in records if r["message"] == "agent node2 stopped"]
        assert released and exited, (released, exited)
        assert released[-1] < exited[-1], f"released {released[-1] - exited[-1]:.2f} s after"

        assert not [r for r in records if "stopping before the primary took" in r["message"]]
        # An orderly stop, on both sides: nothing logged as an error (node1's data plane
        # hears "left the secondary role", not a failure).
        dp_log = (c.module_dir("node2") / "dataplane" / "dataplane.log").read_text()
        assert " ERROR " not in dp_log, dp_log
        errors = [e["message"] for e in c.logs("node1") if e["level"] == "ERROR"]
        assert not errors, errors
        n, problems = check_log(c.copy("node1"), w.log)
        assert n > 40 and not problems, problems[:8]
    finally:
        c.close()


def test_a_standby_of_a_module_without_replication_does_not_wait_at_its_stop(
    topology: Topology, tmp_path: Path
) -> None:
    """The example site's module runs an application and replicates no directory: there is
    no stream to break, so no promise to give -- the stopping agent does not wait for one
    (it stayed the whole 2 s and warned that the primary's writes might wait)."""
    for binary in ("nsenter", "ping", "arping"):
        require_binary(binary)
    c = NetnsCluster(topology, tmp_path / "cluster")
    try:
        c.start()
        c.wait_pair("node1", timeout=30)
        assert c.stop_agent("node2") == 0
        node2_log = c.base / "node2" / "data" / "module-log.jsonl"
        messages = [json.loads(ln)["message"] for ln in node2_log.read_text().splitlines()]
        assert "agent node2 stopped" in messages
        assert not [m for m in messages if "stopping before the primary took" in m], messages
    finally:
        c.close()
