"""Protect an existing VM (issue 11, point 3): `mirrorpair vm adopt` gathers a domain an
admin defined by hand into one directory, or refuses with the reason (running, snapshot,
block device, backing chain); the printed module section then protects it. The CLI runs
from the client host; node1's own libvirtd defines the domain."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import libvirt
import pytest

from node_agent.demo_vm.domain import install_vm
from node_agent.demo_vm.guest import Guest
from node_agent.resources.vm_xml import parse_domain, problems
from tests.integration.site import Site

pytestmark = pytest.mark.root


def adopt(site: Site, domain: str, target: Path) -> subprocess.CompletedProcess[str]:
    return site.cli("vm", "adopt", domain, "--node", "node1", "--directory", str(target),
                    "--yes", timeout=120)  # fmt: skip


def refused(site: Site, domain: str, target: Path, words: str) -> None:
    r = adopt(site, domain, target)
    assert r.returncode == 13 and words in r.stderr, (words, r.stdout, r.stderr)
    assert not target.exists() or not any(target.iterdir()), "a refused adoption moved files"


def test_adopting_an_existing_vm_then_protecting_it(site: Site, guest: Guest) -> None:
    lv = {n: site.start_libvirtd(n) for n in ("node1", "node2")}
    site.start()
    site.wait_pair("node1", timeout=40)
    legacy = site.base / "images" / "legacy"  # where an admin keeps the VM today
    vm = install_vm(legacy, guest, name="legacy", cmdline=guest.cmdline("ready"),
                    console_log=site.base / "console" / "legacy.log")  # fmt: skip
    conn = lv["node1"].connect()
    dom = conn.defineXML(vm.xml)
    target = site.base / "srv" / "vms" / "legacy"

    dom.create()
    refused(site, "legacy", target, "legacy is running: shut it down first")
    dom.destroy()
    snap = dom.snapshotCreateXML("<domainsnapshot><name>before</name></domainsnapshot>", 0)
    refused(site, "legacy", target, "has 1 snapshot(s)")
    snap.delete(0)
    block = vm.xml.replace("<name>legacy</name>", "<name>blk</name>").replace(
        "<disk type='file' device='disk'>", "<disk type='block' device='disk'><source "
        "dev='/dev/null'/><target dev='vdb' bus='virtio'/></disk><disk type='file' "
        "device='disk'>", 1)  # fmt: skip
    conn.defineXML(block)
    refused(site, "blk", target, "disk vdb is a block device (/dev/null)")
    overlay = legacy / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                    str(vm.disk), str(overlay)], check=True)  # fmt: skip
    chained = vm.xml.replace("<name>legacy</name>", "<name>chain</name>").replace(
        str(vm.disk), str(overlay)
    )
    conn.defineXML(chained)
    refused(site, "chain", target, f"({overlay}) has a backing chain: flatten it first")

    listed = json.loads(site.cli("vm", "list", "--json").stdout)  # what each node knows
    legacy_vm = next(v for v in listed["node1"] if v["domain"] == "legacy")
    assert legacy_vm["persistent"] and not legacy_vm.get("module"), legacy_vm
    assert [d["path"] for d in legacy_vm["disks"]] == [str(vm.disk)]
    assert {v["domain"] for v in listed["node1"]} == {"legacy", "blk", "chain"}
    assert listed["node2"] == []

    r = adopt(site, "legacy", target)
    assert r.returncode == 0, r.stdout + r.stderr
    moved = {p.name for p in target.iterdir()}
    assert moved == {"vmlinuz", "initrd.img", vm.disk.name, "legacy.xml"}, moved
    assert not vm.disk.exists() and not (legacy / "vmlinuz").exists()
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByName("legacy")  # undefined: the module defines it from now on
    spec = parse_domain((target / "legacy.xml").read_text(), "legacy.xml")
    assert problems(spec, [str(target)]) == []
    section = r.stdout[r.stdout.index("[[module]]") :]
    assert f'directories = ["{target}"]' in section and 'kind = "vm"' in section
    conn.close()

    # As the output says: add the section to the config on both nodes, restart them.
    for node in ("node1", "node2"):
        assert site.stop_agent(node) == 0
    with open(site.config, "a") as fh:
        fh.write("\n" + section)
    site.start()
    site.wait_module("node1", "legacy", "PRIM", "READY", timeout=90)
    site.wait_module("node2", "legacy", "SECOND", "READY", timeout=60)
    assert lv["node1"].domain_running("legacy") and not lv["node2"].domain_running("legacy")
    listed = json.loads(site.cli("vm", "list", "--json").stdout)
    running = next(v for v in listed["node1"] if v["domain"] == "legacy")
    assert (running["module"], running.get("persistent", False)) == ("legacy", False), running
