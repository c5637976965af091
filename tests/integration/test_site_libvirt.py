"""Each server of a site runs its own libvirtd (tests/integration/site_libvirt.py): the
daemons are independent, ``qemu:///system`` inside a server reaches that server's own, QEMU
runs in the server's network namespace, and a guest whose files both servers see boots on
either one, continuing from the records the other left."""

from __future__ import annotations

import os
import subprocess
import sys

import libvirt
import pytest

from node_agent.demo_vm.disk import check_disk
from node_agent.demo_vm.domain import install_vm
from node_agent.demo_vm.guest import Guest
from tests.integration.site import Site
from tests.vm.console import ConsoleLog
from tests.vm.records import read_records

LAST = r"^LAST (\d+)$"
# What the agent will do: libvirt-python on qemu:///system, from inside its server.
LIST_INSIDE = (
    "import libvirt; c = libvirt.open('qemu:///system'); "
    "print(' '.join(sorted(d.name() for d in c.listAllDomains())))"
)


def names_inside(site: Site, node: str) -> list[str]:
    argv = [*site.nsenter(node), sys.executable, "-c", LIST_INSIDE]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
    return r.stdout.split()


def test_each_server_has_its_own_libvirtd_and_a_shared_guest_boots_on_either(
    site: Site, guest: Guest
) -> None:
    lv = {node: site.start_libvirtd(node) for node in ("node1", "node2")}
    vm = install_vm(site.base / "srv" / "vm", guest, name="shared",
                    console_log=site.base / "console" / "shared.log")  # fmt: skip
    log = ConsoleLog(vm.console_log)
    conn = {node: lv[node].connect() for node in lv}

    conn["node1"].createXML(vm.xml, 0)
    assert log.wait_for(LAST, alive=lambda: lv["node1"].domain_running("shared"))[1] == "0"
    assert names_inside(site, "node1") == ["shared"]
    assert names_inside(site, "node2") == []
    assert [d.name() for d in conn["node2"].listAllDomains()] == []
    qemu = lv["node1"].qemu_pids()["shared"]
    netns = os.stat(f"/run/netns/{site.topo.ns['node1']}").st_ino
    assert os.stat(f"/proc/{qemu}/ns/net").st_ino == netns

    # Both servers see the same image here (on a real pair each has its own copy): QEMU's
    # image lock keeps a second QEMU off it while the first runs.
    with pytest.raises(libvirt.libvirtError, match="lock"):
        conn["node2"].createXML(vm.xml, 0)

    log.wait_rec(5, alive=lambda: lv["node1"].domain_running("shared"))
    lv["node1"].kill_qemu("shared")
    lv["node1"].wait_gone("shared")
    reported = log.last_rec()

    mark = log.mark()
    conn["node2"].createXML(vm.xml, 0)
    running2 = lambda: lv["node2"].domain_running("shared")  # noqa: E731
    last = int(log.wait_for(LAST, since=mark, alive=running2)[1])
    assert last >= reported
    log.wait_rec(last + 3, since=mark, alive=running2)
    assert names_inside(site, "node2") == ["shared"]
    assert names_inside(site, "node1") == []
    # A clean power-off (the ACPI button): a destroy, like the kill above, may leave a
    # leaked cluster (space lost, data intact) that qemu-img check reports.
    conn["node2"].lookupByName("shared").shutdown()
    lv["node2"].wait_gone("shared")

    scan = read_records(vm.disk)
    assert scan.intact(log.last_rec()) and scan.consistent, scan
    assert set(scan.boots.values()) == {1, 2}
    # No corruption. A QEMU SIGKILLed while qcow2 allocated may leak a cluster (space
    # lost, no data: qemu-img check exit 3), as on a local disk; never an error.
    checked = check_disk(vm.disk)
    assert checked.supported and checked.errors == 0, checked
    for c in conn.values():
        c.close()
