"""What goes wrong with a VM module says so (issue 11, point 5), on a real two-server site:
libvirt not running on a node; a domain of the same name defined outside the product on
the other node; a disk outside the replicated directory; an unknown image format; not
enough memory; a guest that does not boot on the other node (libvirt's own message in the
module log). A node that could not run the VM waits, saying why, instead of being
offered a swap or a failover it would fail."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from node_agent.demo_vm.guest import Guest
from tests.integration.site import Site
from tests.integration.test_site_vm import NAME, VmSite, logged, make_vm_site

pytestmark = pytest.mark.root

CHECK_S = 30.0  # the libvirt checker (every 3 s, 2 failures), the agents' steps, load


def libvirt_checker(site: Site, node: str) -> dict:
    m = site.module_named(node, NAME)
    assert m is not None
    return next(c for c in m["checkers"] if c["name"] == "libvirt")


def waits_because(s: VmSite, node: str, words: str) -> dict:
    """``node`` waits (not a secondary a swap could go to), its libvirt checker says why."""

    def ok() -> dict | None:
        m = s.site.module_named(node, NAME)
        c = libvirt_checker(s.site, node)
        return m if m and m["state"] == "STATE_WAIT" and words in c["detail"] else None

    return s.site.wait_for(ok, f"{node} waiting because {words!r}", CHECK_S)


def test_a_node_that_could_not_run_the_vm_waits_and_says_why(site: Site, guest: Guest) -> None:
    s = make_vm_site(site, guest, guest.cmdline("ready"), libvirt_on=("node1",))
    site.start()
    site.wait_module("node1", NAME, "ALONE", "READY", timeout=90)
    waits_because(s, "node2", "libvirt at qemu:///system is not reachable")
    r = site.cli("swap", NAME)
    assert r.returncode == 13 and "the peer is WAIT" in r.stdout, r.stdout + r.stderr

    s.lv["node2"] = site.start_libvirtd("node2")  # started: node2 becomes a secondary
    site.wait_module("node2", NAME, "SECOND", "READY", timeout=CHECK_S)

    outside = s.lv["node2"].connect()
    outside.defineXML((s.copy("node2") / "domain.xml").read_text())  # by hand: not ours
    waits_because(s, "node2", "defined on node2 outside MirrorPair")
    outside.lookupByName(NAME).undefine()
    site.wait_module("node2", NAME, "SECOND", "READY", timeout=CHECK_S)
    outside.close()


def put_definition(s: VmSite, xml: str) -> None:
    """Write the domain definition into both nodes' copies (the module is stopped)."""
    for node in ("node1", "node2"):
        (s.copy(node) / "domain.xml").write_text(xml)


@pytest.mark.parametrize(
    ("change", "words"),
    [("disk-outside", "disk vdb (/var/tmp/mp-outside.img) is outside the replicated directory"),
     ("vmdk", "has the image format 'vmdk'"),
     ("memory", "not enough memory on node1 to start domain rec")],
)  # fmt: skip
def test_a_definition_that_cannot_run_is_refused_naming_why(
    site: Site, guest: Guest, change: str, words: str
) -> None:
    s = make_vm_site(site, guest, guest.cmdline("ready"))
    xml = s.vm.xml
    disk = "<disk type='file' device='disk'>"
    if change == "disk-outside":
        extra = (
            "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source "
            "file='/var/tmp/mp-outside.img'/><target dev='vdb' bus='virtio'/></disk>"
        )
        xml = xml.replace(disk, extra + disk, 1)
    elif change == "vmdk":
        xml, n = re.subn(r"""type=["']qcow2["']""", "type='vmdk'", xml, count=1)
        assert n == 1, xml
    else:
        xml, n = re.subn(r"<memory unit='MiB'>\d+</memory>", "<memory unit='TiB'>64</memory>",
                         xml)  # fmt: skip
        assert n == 1, xml
    (s.vm.dir / "domain.xml").write_text(xml)  # as the VM's directory holds it
    site.start()
    # node1, elected, refuses to start it, saying why (node2 never had the data).
    m1 = site.wait_for(lambda: logged(site, "node1", words) and site.module_named("node1", NAME),
                       "node1 refusing to start it", 60)  # fmt: skip
    assert m1["resource_state"] != "running"
    assert not s.running("node1") and not s.running("node2")


def test_a_guest_that_does_not_boot_on_the_other_node_is_reported_with_libvirt_s_words(
    site: Site, guest: Guest
) -> None:
    s = make_vm_site(site, guest, guest.cmdline("ready"), maxloop=1)
    site.start()
    site.wait_module("node1", NAME, "PRIM", "READY", timeout=90)
    site.wait_module("node2", NAME, "SECOND", "READY", timeout=60)
    # node2's QEMU cannot boot it: the kernel it boots is broken there (the copies on
    # node1's side stay intact: node2's is changed behind replication, as a bad disk would).
    broken = s.copy("node2") / Path(s.vm.kernel).name
    broken.write_bytes(b"not a kernel")
    r = site.cli("swap", NAME, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    said = re.compile(r"libvirt could not start domain rec on node2: (.+)")
    entry = site.wait_for(lambda: next((e for e in site.logs_of("node2", NAME)
                                        if said.search(e["message"])), None),
                          "libvirt's refusal in node2's module log", 90)  # fmt: skip
    assert len(said.search(entry["message"])[1]) > 10, entry  # libvirt's own words
    # The module does not stay down: it runs on node1 again.
    site.wait_for(lambda: s.running("node1"), "the guest back on node1", 120)


def test_a_running_guest_is_left_alone_while_its_libvirtd_is_down(site: Site, guest: Guest) -> None:
    """libvirtd dies on the primary (a crash, an upgrade restarting it): QEMU runs on
    without it, so the guest is neither restarted nor failed over blind; the checker
    says the domain's state is unknown (not a pass) until libvirt answers again."""
    s = make_vm_site(site, guest, guest.cmdline("ready"))
    site.start()
    site.wait_module("node1", NAME, "PRIM", "READY", timeout=90)
    site.wait_module("node2", NAME, "SECOND", "READY", timeout=60)
    qemu = s.lv["node1"].qemu_pids()[NAME]
    daemon = s.lv["node1"].proc
    assert daemon is not None
    daemon.kill()  # SIGKILL of libvirtd only
    daemon.wait()

    def unknown() -> dict | None:
        m = site.module_named("node1", NAME) or {}
        c = next((c for c in m.get("checkers", []) if c["name"] == "process"), {})
        return c if "state is unknown" in c.get("detail", "") else None

    checker = site.wait_for(unknown, "the checker saying the state is unknown", 30)
    assert not checker.get("consecutive_failures"), checker  # nor counted as a failure
    time.sleep(6)  # more than the checker's interval: it asked again, still not acted on
    assert os.path.exists(f"/proc/{qemu}"), "the guest's QEMU was stopped"
    assert unknown() is not None
    m1 = site.module_named("node1", NAME) or {}
    assert (m1.get("state"), m1.get("readiness")) == ("STATE_PRIM", "READINESS_READY"), m1
    assert not logged(site, "node1", "local restart")
    assert (site.module_named("node2", NAME) or {}).get("state") == "STATE_SECOND"
