"""The test guest on a local libvirtd (tests/vm/): a transient domain defined from Python's
libvirt, its ready mode, power-off on request. (Records surviving a SIGKILLed QEMU and the
next boot continuing from them: tests/integration/test_site_libvirt.py, and through the
agents tests/integration/test_site_vm.py.)"""

from __future__ import annotations

import re
from pathlib import Path

from node_agent.demo_vm.disk import check_disk
from node_agent.demo_vm.domain import install_vm, with_cmdline
from node_agent.demo_vm.guest import Guest
from tests.vm.console import ConsoleLog
from tests.vm.libvirtd import Libvirtd
from tests.vm.records import read_records

LAST = r"^LAST (\d+)$"


def test_ready_mode_leaves_the_disk_alone_and_powers_off_when_told(
    local_libvirtd: Libvirtd, guest: Guest, tmp_path: Path
) -> None:
    vm = install_vm(tmp_path / "module", guest, name="idle", disk_format="raw",
                    console_log=tmp_path / "console.log")  # fmt: skip
    log = ConsoleLog(vm.console_log)
    conn = local_libvirtd.connect()
    conn.createXML(with_cmdline(vm, guest.cmdline("ready", poweroff=1)), 0)
    log.wait_for(r"^READY$", alive=lambda: local_libvirtd.domain_running("idle"))
    local_libvirtd.wait_gone("idle")  # powered itself off: the transient domain is gone
    assert re.search(r"^POWEROFF timer$", log.text(), re.M)
    assert "REC" not in log.text()
    scan = read_records(vm.disk)
    assert (scan.last, scan.bad) == (0, [])
    assert not check_disk(vm.disk).supported  # raw: nothing to check
    conn.close()
