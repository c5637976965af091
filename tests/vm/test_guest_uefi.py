"""The test guest booted through UEFI on a local libvirtd (tests/vm/): OVMF (Debian
trixie's, node_agent/demo_vm/firmware.py) on q35 boots the same kernel and initrd directly,
with the guest's NVRAM a file of the VM directory that the firmware writes to."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from node_agent.demo_vm.domain import install_vm
from node_agent.demo_vm.firmware import Firmware
from node_agent.demo_vm.guest import Guest
from tests.vm.console import ConsoleLog
from tests.vm.libvirtd import Libvirtd
from tests.vm.nvram import mtc, variables
from tests.vm.records import read_records


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_uefi_guest_boots_to_its_records_with_its_nvram_in_the_vm_directory(
    local_libvirtd: Libvirtd, guest: Guest, uefi: Firmware, tmp_path: Path
) -> None:
    vm = install_vm(tmp_path / "module", guest, name="efi", uefi=uefi,
                    console_log=tmp_path / "console.log")  # fmt: skip
    assert vm.nvram == vm.dir / "nvram.fd"
    assert sha256(vm.nvram) == sha256(uefi.vars_template)  # a copy, made at install
    xml = vm.xml
    assert "machine='q35'" in xml
    assert f"<loader readonly='yes' type='pflash'>{uefi.code}</loader>" in xml
    assert f'<nvram template="{uefi.vars_template}">{vm.nvram}</nvram>' in xml

    log = ConsoleLog(vm.console_log)
    conn = local_libvirtd.connect()
    started = time.monotonic()
    conn.createXML(xml, 0)
    alive = lambda: local_libvirtd.domain_running("efi")  # noqa: E731
    # The guest's userspace (its init) is up: it read its disk and reports records.
    log.wait_for(r"^LAST 0$", timeout=120, alive=alive)
    booted = time.monotonic() - started
    log.wait_rec(5, alive=alive)
    print(f"UEFI guest: domain start to its init's first line {booted:.1f} s")
    # Booted through the firmware: it wrote its variables (boot options, its boot counter)
    # to the VM's own NVRAM file.
    assert sha256(vm.nvram) != sha256(uefi.vars_template)
    assert mtc(vm.nvram) == 1, sorted(variables(vm.nvram))
    assert vm.nvram.stat().st_size == uefi.vars_template.stat().st_size

    conn.lookupByName("efi").destroy()
    local_libvirtd.wait_gone("efi")
    assert vm.nvram.is_file()  # a transient domain's end leaves its NVRAM in place
    scan = read_records(vm.disk)
    assert scan.intact(log.last_rec()) and scan.consistent, scan
    conn.close()
