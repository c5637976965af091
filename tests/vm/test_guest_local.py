"""The test guest on a local libvirtd (tests/vm/): transient domains defined from Python's
libvirt, records reported on the serial console and found on the disk after QEMU is killed,
a reboot that continues from them, power-off on request."""

from __future__ import annotations

import re
from pathlib import Path

from tests.vm.console import ConsoleLog
from tests.vm.disk import check_disk
from tests.vm.domain import install_vm, with_cmdline
from tests.vm.guest import Guest
from tests.vm.libvirtd import Libvirtd
from tests.vm.records import read_records

LAST = r"^LAST (\d+)$"


def test_records_survive_a_killed_qemu_and_the_next_boot_continues(
    local_libvirtd: Libvirtd, guest: Guest, tmp_path: Path
) -> None:
    vm = install_vm(tmp_path / "module", guest, name="records",
                    console_log=tmp_path / "console.log")  # fmt: skip
    log = ConsoleLog(vm.console_log)
    conn = local_libvirtd.connect()

    def running() -> bool:
        return local_libvirtd.domain_running("records")

    conn.createXML(vm.xml, 0)
    assert log.wait_for(LAST, alive=running)[1] == "0"  # a new, empty disk
    log.wait_rec(10, alive=running)
    local_libvirtd.kill_qemu("records")  # as in a crash: no shutdown, no last flush
    local_libvirtd.wait_gone("records")
    reported = log.last_rec()
    assert log.recs() == list(range(1, reported + 1))

    scan = read_records(vm.disk)
    assert scan.intact(reported), (reported, scan)
    assert scan.consistent, scan
    assert set(scan.boots.values()) == {1}
    assert check_disk(vm.disk).clean

    mark = log.mark()
    conn.createXML(vm.xml, 0)
    last = int(log.wait_for(LAST, since=mark, alive=running)[1])
    assert last >= reported
    log.wait_rec(last + 5, since=mark, alive=running)

    conn.lookupByName("records").shutdown()  # the ACPI power button
    local_libvirtd.wait_gone("records")
    assert "POWEROFF acpi" in log.text(mark)
    now = log.last_rec(since=mark)
    assert log.recs(since=mark) == list(range(last + 1, now + 1))
    scan = read_records(vm.disk)
    assert scan.intact(now) and scan.consistent, scan
    assert {scan.boots[n] for n in range(last + 1, now + 1)} == {2}
    assert check_disk(vm.disk).clean
    conn.close()


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
