"""A UEFI VM module on a real two-server site (issue 11: "several disks and a separate
NVRAM/config file work"): the guest boots through OVMF (Debian trixie's,
node_agent/demo_vm/firmware.py) on q35, its NVRAM file and its two disks in the module's
replicated directory, the firmware's code installed on each node (outside it).

The NVRAM is data the firmware writes at every boot (boot options, its monotonic counter):
node1's writes reach node2's copy like the disks' do, so after a crash node2's firmware
starts from what node1's left, not from the template. QEMU writes the NVRAM (a pflash
drive) with plain buffered writes and never flushes them, so a vm module has
``write_cache = false`` by default (docs/vm-modules.md): with the mount's writeback cache
those writes would reach the other node only when the kernel writes them back (about 30 s
later), and a crash before that would lose them, as a power cut loses a local disk's
unflushed writes.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from node_agent.demo_vm.firmware import Firmware
from node_agent.demo_vm.guest import Guest
from tests.integration.site import Site
from tests.integration.test_site_vm import LAST, NAME, add_data_disk, make_vm_site
from tests.vm.nvram import mtc, variables
from tests.vm.records import read_records

pytestmark = pytest.mark.root


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_uefi_vm_boots_on_the_other_node_from_the_replicated_nvram_after_a_crash(
    site: Site, guest: Guest, uefi: Firmware
) -> None:
    s = make_vm_site(site, guest, uefi=uefi)
    add_data_disk(s.vm)
    nvram = s.vm.nvram
    assert nvram is not None and nvram.parent == s.vm.dir
    assert f"<loader readonly='yes' type='pflash'>{uefi.code}</loader>" in s.vm.xml
    started = time.monotonic()
    site.start()
    site.wait_module("node1", NAME, "PRIM", "READY", timeout=120)
    site.wait_module("node2", NAME, "SECOND", "READY", timeout=60)
    assert s.running("node1") and not s.running("node2")
    s.log.wait_for(LAST, timeout=120, alive=lambda: s.running("node1"))
    print(f"UEFI guest on node1: agents' start to its init's first line "
          f"{time.monotonic() - started:.1f} s")  # fmt: skip
    s.log.wait_rec(10, alive=lambda: s.running("node1"))

    # The firmware wrote its variables on node1 during the boot; the guest's OS does not
    # touch them: once both copies agree they stay so while the guest runs.
    nv1, nv2 = s.copy("node1") / nvram.name, s.copy("node2") / nvram.name
    site.wait_for(lambda: sha256(nv1) == sha256(nv2), "both copies of the NVRAM equal", 30)
    written = sha256(nv1)
    assert written != sha256(uefi.vars_template), "the firmware wrote nothing to the NVRAM"
    boots = mtc(nv1)
    assert boots >= 1, sorted(variables(nv1))

    # The server dies: its agent, its application and its QEMU, all SIGKILLed.
    assert sha256(nv1) == written == sha256(nv2)
    site.kill_agent("node1")
    site.kill_app("node1")
    s.lv["node1"].kill_qemu(NAME)
    reported, mark = s.log.last_rec(), s.log.mark()
    killed = time.monotonic()

    site.wait_module("node2", NAME, "ALONE", timeout=30)
    site.wait_for(lambda: s.running("node2"), "the domain running on node2", 60)
    last = int(s.log.wait_for(LAST, since=mark, timeout=120, alive=lambda: s.running("node2"))[1])
    print(f"UEFI guest on node2: SIGKILL to its init's first line "
          f"{time.monotonic() - killed:.1f} s")  # fmt: skip
    assert last >= reported, f"the guest on node2 found record {last}, {reported} were reported"
    s.log.wait_rec(last + 5, since=mark, alive=lambda: s.running("node2"))
    m2 = site.wait_module("node2", NAME, "ALONE", "READY", timeout=60)
    assert [d["target"] for d in m2["vm"]["disks"]] == ["vda", "vdb"], m2["vm"]
    # node2's firmware started from node1's variables: its boot counter went on from them.
    assert mtc(nv2) == boots + 1, (boots, mtc(nv2))

    r = site.cli("stop", NAME, "--node", "node2", "--yes")  # an ACPI shutdown
    assert r.returncode == 0, r.stdout + r.stderr
    site.wait_module("node2", NAME, "STOP", timeout=60)
    scan = read_records(s.copy("node2") / s.vm.disk.name)
    assert scan.intact(s.log.last_rec()) and scan.consistent, scan
