"""VM modules on a real two-server site (issue 11): a guest whose virtio disk (cache=none)
sits in the module's replicated directory writes numbered, fsynced records and reports
each on its serial console; the agents run it through each server's own libvirtd.

The guest files are put in the directory before the module is first protected (issue 11:
"just name the VM's directory"); the example config gets the module a user would add.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from node_agent.demo_vm.disk import check_disk, create_disk
from node_agent.demo_vm.domain import VmFiles, install_vm
from node_agent.demo_vm.firmware import Firmware
from node_agent.demo_vm.guest import Guest
from tests.integration.site import Site
from tests.vm.console import ConsoleLog
from tests.vm.libvirtd import Libvirtd
from tests.vm.records import read_records

pytestmark = pytest.mark.root

NAME = "rec"
LAST = r"^LAST (\d+)$"


def vm_module(directory: Path, maxloop: int = 1, guest_agent: bool = False) -> str:
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
guest_agent = {str(guest_agent).lower()}
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


def make_vm_site(site: Site, guest: Guest, cmdline: str | None = None, maxloop: int = 1,
                 libvirt_on: tuple[str, ...] = ("node1", "node2"),
                 guest_agent: bool = False, uefi: Firmware | None = None) -> VmSite:  # fmt: skip
    lv = {node: site.start_libvirtd(node) for node in libvirt_on}
    vm = install_vm(site.base / "srv" / "vms" / NAME, guest, name=NAME, cmdline=cmdline,
                    console_log=site.base / "console" / f"{NAME}.log",
                    guest_agent=guest_agent, uefi=uefi)  # fmt: skip
    with open(site.config, "a") as fh:
        fh.write(vm_module(vm.dir, maxloop, guest_agent))
    return VmSite(site, vm, ConsoleLog(vm.console_log), lv)


@pytest.fixture
def vm_site(site: Site, guest: Guest) -> Iterator[VmSite]:
    yield make_vm_site(site, guest)


def logged(site: Site, node: str, text: str, since: float = 0.0) -> bool:
    return any(text in e["message"] and float(e.get("time", 0)) >= since
               for e in site.logs_of(node, NAME))  # fmt: skip


def add_data_disk(vm: VmFiles) -> None:
    """A second disk (raw, beside the first, qcow2): a VM of several disks."""
    create_disk(vm.dir / "data.raw", 8, "raw")
    disk = (
        "<disk type='file' device='disk'><driver name='qemu' type='raw' cache='none'/>"
        f"<source file='{vm.dir / 'data.raw'}'/><target dev='vdb' bus='virtio'/></disk>"
    )
    vm.xml_path.write_text(vm.xml.replace("</devices>", disk + "</devices>"))


def test_a_crashed_primary_s_vm_boots_on_the_other_node_with_every_reported_record(
    vm_site: VmSite,
) -> None:
    s, site = vm_site, vm_site.site
    add_data_disk(s.vm)
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
    assert [d["target"] for d in m2["vm"]["disks"]] == ["vda", "vdb"], m2["vm"]

    r = site.cli("stop", NAME, "--node", "node2", "--yes")  # an ACPI shutdown
    assert r.returncode == 0, r.stdout + r.stderr
    site.wait_module("node2", NAME, "STOP", timeout=60)
    assert not s.running("node2")
    scan = read_records(s.copy("node2") / s.vm.disk.name)
    assert scan.intact(s.log.last_rec()) and scan.consistent, scan
    # No corruption. A QEMU SIGKILLed while qcow2 allocated may leak a cluster (space
    # lost, no data: qemu-img check exit 3), as on a local disk; never an error.
    checked = check_disk(s.copy("node2") / s.vm.disk.name)
    assert checked.supported and checked.errors == 0, checked


def test_a_swap_moves_the_running_vm_and_back_shut_down_cleanly_each_time(
    vm_site: VmSite,
) -> None:
    s, site = vm_site, vm_site.site
    site.start()
    site.wait_module("node1", NAME, "PRIM", "READY", timeout=90)
    site.wait_module("node2", NAME, "SECOND", "READY", timeout=60)
    for new, old in (("node2", "node1"), ("node1", "node2")):
        s.log.wait_rec(s.log.last_rec() + 3, alive=lambda o=old: s.running(o))
        r = site.cli("swap", NAME, "--wait", "--wait-timeout", "120", timeout=150)
        assert r.returncode == 0, r.stdout + r.stderr
        reported, mark = s.log.last_rec(), s.log.mark()
        site.wait_module(new, NAME, "PRIM", "READY", timeout=60)
        site.wait_module(old, NAME, "SECOND", "READY", timeout=60)
        assert s.running(new) and not s.running(old)
        assert logged(site, old, "shut down cleanly"), "the guest was not shut down cleanly"
        last = int(s.log.wait_for(LAST, since=mark, alive=lambda n=new: s.running(n))[1])
        assert last >= reported, f"{new}'s guest found record {last}; {reported} reported"


def test_the_vm_checker_restarts_a_guest_that_died_then_fails_over(
    site: Site, guest: Guest
) -> None:
    """First QEMU is killed behind the agent's back, then the guest powers itself off:
    each is seen (libvirt's lifecycle event names it), the first is restarted in place,
    the second exceeds maxloop (1) and the module fails over."""
    s = make_vm_site(site, guest, guest.cmdline("records", records=60), maxloop=1)
    site.start()
    site.wait_module("node1", NAME, "PRIM", "READY", timeout=90)
    site.wait_module("node2", NAME, "SECOND", "READY", timeout=60)
    s.log.wait_rec(5, alive=lambda: s.running("node1"))
    first = s.lv["node1"].qemu_pids()[NAME]
    s.lv["node1"].kill_qemu(NAME)
    mark = s.log.mark()
    site.wait_for(lambda: logged(site, "node1", "local restart 1/1"), "a local restart", 30)
    site.wait_for(lambda: logged(site, "node1", "domain rec failed (the QEMU process died)"),
                  "libvirt's event named in the log", 10)  # fmt: skip
    site.wait_for(lambda: s.running("node1") and s.lv["node1"].qemu_pids().get(NAME) != first,
                  "the guest restarted on node1", 60)  # fmt: skip
    s.log.wait_for(LAST, since=mark, alive=lambda: s.running("node1"))
    # This boot powers itself off after its 60 records: maxloop reached, node2 takes over.
    site.wait_module("node2", NAME, "PRIM", timeout=120)
    site.wait_for(lambda: s.running("node2"), "the guest running on node2", 60)
    assert logged(site, "node1", "domain rec shut down from inside the guest")
    assert logged(site, "node1", "maxloop (1) reached")


def guest_exec(lv: Libvirtd, *argv: str) -> None:
    """Run a busybox command inside the guest through its agent (guest-exec)."""
    cmd = json.dumps({"execute": "guest-exec",
                      "arguments": {"path": "/bin/busybox", "arg": list(argv)}})  # fmt: skip
    r = lv.virsh("qemu-agent-command", NAME, cmd)
    assert r.returncode == 0 and '"pid"' in r.stdout, r.stdout + r.stderr


def kill_guest_agent(lv: Libvirtd) -> None:
    """qemu-ga dies inside the guest (a second after it answered), the guest runs on."""
    guest_exec(lv, "sh", "-c", "sleep 1; killall -9 qemu-ga")


def test_with_guest_agent_the_vm_is_ready_once_its_agent_answers_and_restarted_when_it_stops(
    site: Site, guest: Guest
) -> None:
    """guest_agent = true: the module is Ready only once the QEMU guest agent answers (its
    start time is then the guest's boot); a reboot from inside the guest is left alone
    while the guest boots again; an agent that stops answering in a running guest gets
    the guest restarted in place, the second time (past maxloop) the module fails over and
    is Ready on node2 once the agent answers there."""
    s = make_vm_site(site, guest, guest.cmdline("ready"), maxloop=1, guest_agent=True)
    # A guest that reboots itself stays the same domain (libvirt's default; the test
    # guest's own default ends the domain).
    s.vm.xml_path.write_text(s.vm.xml.replace("<on_reboot>destroy", "<on_reboot>restart"))
    site.start()
    site.wait_module("node1", NAME, "PRIM", "READY", timeout=90)
    site.wait_module("node2", NAME, "SECOND", "READY", timeout=60)
    s.log.wait_for(r"^GUEST AGENT$")
    ping = '{"execute": "guest-ping"}'
    site.wait_for(lambda: s.lv["node1"].virsh("qemu-agent-command", NAME, ping).returncode == 0,
                  "the guest agent answering libvirt", 30)  # fmt: skip
    # The start is timed up to the agent's first answer: the guest's boot.
    timed = lambda: float((site.module_named("node1", NAME) or {}).get("last_start_s", 0)) > 0  # noqa: E731
    site.wait_for(timed, "the start timed", 30)
    assert logged(site, "node1", "vm up and answering its checks")

    # A reboot from inside (an update in the VM): the same QEMU, no restart by the agent.
    first = s.lv["node1"].qemu_pids()[NAME]
    mark = s.log.mark()
    # In a second: the agent answers guest-exec first (an immediate reboot can beat it).
    guest_exec(s.lv["node1"], "sh", "-c", "sleep 1; reboot -f")
    s.log.wait_for(r"^GUEST AGENT$", since=mark)
    site.wait_for(lambda: s.lv["node1"].virsh("qemu-agent-command", NAME, ping).returncode == 0,
                  "the guest agent answering after the reboot", 30)  # fmt: skip
    assert logged(site, "node1", "domain rec rebooted from inside the guest")
    assert s.lv["node1"].qemu_pids()[NAME] == first
    assert not logged(site, "node1", "local restart")
    site.wait_module("node1", NAME, "PRIM", "READY", timeout=5)

    kill_guest_agent(s.lv["node1"])
    site.wait_for(lambda: logged(site, "node1", "the guest agent of rec does not answer"),
                  "the unanswered guest agent in the log", 30)  # fmt: skip
    site.wait_for(lambda: logged(site, "node1", "local restart 1/1"), "a local restart", 30)
    site.wait_for(lambda: s.running("node1") and s.lv["node1"].qemu_pids().get(NAME) != first,
                  "the guest restarted on node1", 60)  # fmt: skip
    site.wait_module("node1", NAME, "PRIM", "READY", timeout=60)
    assert logged(site, "node1", "shut down cleanly")  # the guest itself was fine
    assert logged(site, "node1", "the guest agent of rec disconnected")  # libvirt's event

    site.wait_for(timed, "the restart timed up to the guest agent's first answer", 30)
    kill_guest_agent(s.lv["node1"])  # again: past maxloop, node2 takes over
    site.wait_module("node2", NAME, "PRIM", "READY", timeout=120)
    assert s.running("node2") and not s.running("node1")
    assert logged(site, "node1", "maxloop (1) reached")
