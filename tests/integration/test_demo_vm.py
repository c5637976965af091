"""The demo runs a small VM module when the machine can (issue 11, point 6): here with a
libvirtd of the test's own, the demo run in its mount namespace (where qemu:///system
reaches it and QEMU sees the agents' mounts), as on a machine whose libvirtd runs. The
guest is protected in place on node1; `demo kill node1` crashes node1 with its VM; the
guest boots on node2 with every record it reported on node1."""

from __future__ import annotations

from pathlib import Path

import pytest

from node_agent.demo_vm.guest import Guest
from tests.conftest import require_fuse
from tests.integration.demo_run import Demo, paste
from tests.integration.test_demo import NO_DISPLAY, Agents, until
from tests.vm.console import ConsoleLog
from tests.vm.libvirtd import Libvirtd

pytestmark = pytest.mark.root
LAST = r"^LAST (\d+)$"


def test_the_demo_runs_a_small_vm_that_fails_over(tmp_path: Path, guest: Guest) -> None:
    require_fuse()
    lv = Libvirtd(tmp_path / "libvirt").start()
    root = tmp_path / "demo"
    try:
        d = Demo(root, NO_DISPLAY, "--no-console", prefix=lv.enter())
        try:
            d.wait_for("Press Ctrl-C", timeout=180)
            d.wait_for("camera: a small VM")
            agents = Agents(root)
            until(
                "camera PRIM Ready on node1",
                lambda: (
                    (
                        agents.module("node1", "camera").get("state"),
                        agents.module("node1", "camera").get("readiness"),
                    )
                    == ("PRIM", "READY")
                ),
                90,
            )
            assert lv.domain_running("camera-node1") and not lv.domain_running("camera-node2")
            log = ConsoleLog(root / "camera-console.log")
            log.wait_rec(3, alive=lambda: lv.domain_running("camera-node1"))

            r = paste(d.line("demo kill node2").replace("node2", "node1"))
            assert r.returncode == 0 and "its VM camera-node1 destroyed" in r.stdout, r
            reported, mark = log.last_rec(), log.mark()
            until("camera on node2", lambda: lv.domain_running("camera-node2"), 60)
            last = int(log.wait_for(LAST, since=mark, alive=lambda: lv.domain_running(
                "camera-node2"))[1])  # fmt: skip
            assert last >= reported, f"node2's guest found {last}, {reported} were reported"
        finally:
            d.stop()  # its folder, agents and mounts gone
        assert not lv.domain_running("camera-node1") and not lv.domain_running("camera-node2")
    finally:
        lv.stop()
