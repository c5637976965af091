"""After a primary crash the returning node gets what changed, not the whole data set
(issue 10, point 2; DESIGN §5): the old primary's activity log holds only the zones that
may have been in flight, so once its writes were acknowledged and a quiet moment passed,
its crash adds nothing to the resync."""

from __future__ import annotations

import pytest

from node_agent.replication.tracking.activity_log import stored_keys
from tests.integration.repl_netns import MiB, diff_trees
from tests.integration.site import Site

pytestmark = pytest.mark.root

SIZE_MIB = 256
CHANGED_ZONES = 10  # 1 MiB zones rewritten on the survivor: 10 MiB to resync


def test_resync_after_a_primary_crash_sends_what_changed(site: Site) -> None:
    site.start()
    site.wait_pair("node1", timeout=40)
    big = site.www / "big.dat"
    site.sh("node1", f"dd if=/dev/urandom of={big} bs=1M count={SIZE_MIB} conv=fsync "
                     "status=none")  # fmt: skip
    al = site.module_dir("node1") / "track" / "al"
    # Every write was acknowledged (conv=fsync): the log empties once its zones linger out.
    site.wait_for(lambda: not stored_keys(al), "node1's activity log trimmed", 15)

    site.kill_agent("node1")  # a crash: its dead mount, app and VIP stay behind
    site.kill_app("node1")
    site.wait_state("node2", "ALONE", "READY", timeout=20)
    zones = ",".join(str(z * 23 % SIZE_MIB) for z in range(CHANGED_ZONES))
    site.sh("node2", f"python3 -c \"import os; fd = os.open('{big}', os.O_WRONLY); "
                     f"[os.pwrite(fd, os.urandom({MiB}), z * {MiB}) for z in ({zones},)]; "
                     "os.fsync(fd)\"")  # fmt: skip
    done = len(site.resyncs("node2"))
    site.start("node1")
    site.wait_state("node1", "SECOND", "READY", timeout=60)
    site.wait_for(lambda: len(site.resyncs("node2")) > done, "node2's resync report", 10)
    record, sent = site.resyncs("node2")[done]
    changed = CHANGED_ZONES * MiB
    assert changed <= sent <= 1.5 * changed, (record, sent, f"{sent / changed:.2f}x")
    assert not (d := diff_trees(site.module_dir("node1") / "copy" / "0",
                                site.module_dir("node2") / "copy" / "0")), d[:5]  # fmt: skip
