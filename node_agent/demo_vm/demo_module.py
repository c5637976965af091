"""The demo's VM module (issue 11, point 6): the tiny guest of this package protected as a
`vm` module named ``camera``, when the machine can run it, and why not otherwise.

Both demo agents run on one machine and share its libvirt, so the definition names the
domain ``camera-{node}`` and points at ``<root>/mounts/{node}/camera``: each agent puts its
own node id there (the agents replace "{node}" in a definition as in the config). The
guest's files are placed in node1's directory before the agents start: node1, preferred,
protects them in place. The guest writes a numbered, fsynced record to its disk every
second and reports each on its serial console (``<root>/camera-console.log``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from node_agent.demo_vm.domain import domain_xml
from node_agent.demo_vm.guest import GuestBuildError, build_guest

NAME = "camera"
URI = "qemu:///system"


def vm_problem(uri: str = URI) -> str | None:
    """Why this machine cannot run the demo's VM module, or None."""
    if os.geteuid() != 0:
        return "not root (the VM's disk is served through FUSE)"
    for tool, package in (("qemu-system-x86_64", "qemu-system-x86"), ("qemu-img", "qemu-utils")):
        if shutil.which(tool) is None:
            return f"{tool} is missing (apt-get install {package})"
    if importlib.util.find_spec("libvirt") is None:
        return "libvirt-python is missing (pip install 'mirrorpair[vm]')"
    import libvirt

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    try:
        libvirt.openReadOnly(uri).close()
    except libvirt.libvirtError as e:
        return (f"libvirt at {uri} does not answer ({e.get_error_message()}): "
                "apt-get install libvirt-daemon-system; systemctl start libvirtd")  # fmt: skip
    return None


def prepare(root: Path) -> tuple[str, str]:
    """Build (or find) the guest, put its files where node1 will protect them in place;
    (the module's config section, its serial console log). GuestBuildError if it cannot."""
    guest = build_guest()
    src = root / "mounts" / "node1" / NAME  # node1's mount path: taken in place
    src.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(guest.kernel, src / "vmlinuz")
    shutil.copyfile(guest.initrd, src / "initrd.img")
    from node_agent.demo_vm.disk import create_disk

    create_disk(src / "disk.qcow2", 64, "qcow2")
    each = root / "mounts" / "{node}" / NAME  # the same files, as each node sees them
    log = root / f"{NAME}-console.log"
    (src / "domain.xml").write_text(domain_xml(
        f"{NAME}-{{node}}", kernel=each / "vmlinuz", initrd=each / "initrd.img",
        cmdline=guest.cmdline("records", delay=1.0), disk=each / "disk.qcow2",
        console_log=log, guest_agent=guest.has_guest_agent,
    ))  # fmt: skip
    # With the guest agent, the module is up once the guest answers: its boot is timed.
    agent = "guest_agent = true\n" if guest.has_guest_agent else ""
    section = f"""
[[module]]
name = "{NAME}"
kind = "vm"
preferred = "node1"
directories = ["{root / "mounts" / "{node}" / NAME}"]
domain = "domain.xml"
stop_timeout_s = 20
start_timeout_s = 60
maxloop = 1
{agent}"""
    return section, str(log)


def destroy(node: str | None = None, uri: str = URI) -> list[str]:
    """Destroy the demo VM of ``node`` (a server "crash" also kills its VM), or of both
    (the demo's exit); the names destroyed."""
    import libvirt

    out = []
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError:
        return out
    try:
        for n in (node,) if node else ("node1", "node2"):
            try:
                conn.lookupByName(f"{NAME}-{n}").destroy()
                out.append(f"{NAME}-{n}")
            except libvirt.libvirtError:
                pass  # not running there
    finally:
        conn.close()
    return out


__all__ = ["NAME", "GuestBuildError", "destroy", "prepare", "vm_problem"]
