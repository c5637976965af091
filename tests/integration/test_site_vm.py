"""VM modules on a real two-server site (issue 11): a guest whose virtio disk (cache=none)
sits in the module's replicated directory writes numbered, fsynced records and reports
each on its serial console; the agents run it through each server's own libvirtd.

The guest files are put in the directory before the module is first protected (issue 11:
"just name the VM's directory"); the example config gets the module a user would add.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.site import Site
from tests.vm.console import ConsoleLog
from tests.vm.disk import check_disk
from tests.vm.domain import VmFiles, install_vm
from tests.vm.guest import Guest
from tests.vm.libvirtd import Libvirtd
from tests.vm.records import read_records

pytestmark = pytest.mark.root

NAME = "rec"
LAST = r"^LAST (\d+)$"


def vm_module(directory: Path, maxloop: int = 1) -> str:
    return f"""
[[module]]
name = "{NAME}"
kind = "vm"
preferred = "node1"
directories = ["{directory}"]
domain = "domain.xml"
start_timeout_s = 60
stop_timeout_s = 30
maxloop = {maxloop}
loop_interval_s = 600
"""


@dataclass
class VmSite:
    site: Site
    vm: VmFiles
    log: ConsoleLog
    lv: dict[str, Libvirtd]

    def running(self, node: str) -> bool:
        return self.lv[node].domain_running(NAME)

    def copy(self, node: str) -> Path:
        return self.site.module_dir(node).parent / NAME / "copy" / "0"


@pytest.fixture
def vm_site(site: Site, guest: Guest) -> Iterator[VmSite]:
    lv = {node: site.start_libvirtd(node) for node in ("node1", "node2")}
    vm = install_vm(site.base / "srv" / "vms" / NAME, guest, name=NAME,
                    console_log=site.base / "console" / f"{NAME}.log")  # fmt: skip
    with open(site.config, "a") as fh:
        fh.write(vm_module(vm.dir))
    yield VmSite(site, vm, ConsoleLog(vm.console_log), lv)


def test_a_crashed_primary_s_vm_boots_on_the_other_node_with_every_reported_record(
    vm_site: VmSite,
) -> None:
    s, site = vm_site, vm_site.site
    site.start()
    site.wait_module("node1", NAME, "PRIM", "READY", timeout=90)
    site.wait_module("node2", NAME, "SECOND", "READY", timeout=60)
    assert s.running("node1") and not s.running("node2")
    s.log.wait_rec(20, alive=lambda: s.running("node1"))
    # The server dies: its agent, its application and its QEMU, all SIGKILLed.
    site.kill_agent("node1")
    site.kill_app("node1")
    s.lv["node1"].kill_qemu(NAME)
    reported = s.log.last_rec()
    mark = s.log.mark()

    site.wait_module("node2", NAME, "ALONE", timeout=30)
    site.wait_for(lambda: s.running("node2"), "the domain running on node2", 60)
    last = int(s.log.wait_for(LAST, since=mark, timeout=120, alive=lambda: s.running("node2"))[1])
    assert last >= reported, f"the guest on node2 found record {last}, {reported} were reported"
    s.log.wait_rec(last + 5, since=mark, alive=lambda: s.running("node2"))
    m2 = site.wait_module("node2", NAME, "ALONE", "READY", timeout=60)
    assert m2["vm"]["domain"] == NAME and int(m2["vm"]["vcpus"]) == 1

    r = site.cli("stop", NAME, "--node", "node2", "--yes")  # an ACPI shutdown
    assert r.returncode == 0, r.stdout + r.stderr
    site.wait_module("node2", NAME, "STOP", timeout=60)
    assert not s.running("node2")
    scan = read_records(s.copy("node2") / s.vm.disk.name)
    assert scan.intact(s.log.last_rec()) and scan.consistent, scan
    assert check_disk(s.copy("node2") / s.vm.disk.name).clean
