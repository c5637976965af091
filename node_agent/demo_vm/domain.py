"""A test VM as a MirrorPair VM module holds it: kernel, initrd, disk image and domain XML in
one directory (the module's replicated directory), every path in the XML absolute and inside
it, so either server finds them at the same path.

    vm = install_vm(vm_dir, guest, name="rec", console_log=node_dir / "console.log")
    dom = conn.createXML(vm.xml_path.read_text())   # transient, as the agent will define it

The disk is virtio with ``cache='none'`` (O_DIRECT on the host: what a replicated VM disk
must survive) and ``io='native'`` by default; the serial port goes to a file appended
across boots, outside the directory (a node-local log, not replicated data).

``uefi=`` (a :class:`~node_agent.demo_vm.firmware.Firmware`) makes it a UEFI guest: machine
q35, the firmware's code as a read-only pflash loader (node-installed, outside the
directory) and the guest's NVRAM as ``nvram.fd`` in the directory, a copy of the firmware's
variable template made at install, so the NVRAM is replicated data from the first boot on
(libvirt would otherwise create it under /var/lib/libvirt, on one node only). OVMF boots
the same kernel and initrd directly (the Debian kernel has an EFI stub).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from node_agent.demo_vm.disk import create_disk
from node_agent.demo_vm.firmware import Firmware
from node_agent.demo_vm.guest import Guest

# OVMF takes its share of the guest's memory (its own data, runtime services, the copies
# of the kernel and initrd it loads): with 128 MiB the test guest's kernel never starts
# (seen under TCG: the firmware clears the screen, then nothing); 256 MiB boots it.
UEFI_MEMORY_MIB = 256


@dataclass(frozen=True)
class VmFiles:
    name: str
    dir: Path
    kernel: Path
    initrd: Path
    disk: Path
    disk_format: str
    console_log: Path
    xml_path: Path
    memory_mib: int
    io: str
    guest_agent: bool = False
    uefi: Firmware | None = None
    nvram: Path | None = None  # the guest's NVRAM file (UEFI only), in ``dir``

    @property
    def xml(self) -> str:
        return self.xml_path.read_text()


def domain_xml(
    name: str,
    *,
    kernel: Path,
    initrd: Path,
    cmdline: str,
    disk: Path,
    console_log: Path,
    disk_format: str = "qcow2",
    memory_mib: int = 128,
    io: str = "native",
    guest_agent: bool = False,
    uefi: Firmware | None = None,
    nvram: Path | None = None,
) -> str:
    """A libvirt domain for TCG (``type='qemu'``: this machine's KVM cannot boot it), one
    vCPU, direct kernel boot, no graphics, network or USB. ACPI is on so that libvirt's
    shutdown() presses the power button, which the guest answers by powering off. Any end
    of the guest (power off, reboot, crash) ends the domain: a transient domain is gone.
    ``guest_agent``: the virtio serial channel the QEMU guest agent answers on (the guest
    starts qemu-ga when it sees it). ``uefi``: boot through that firmware on q35 with
    ``nvram`` as the guest's variable store (libvirt copies the template there if the file
    is missing; install_vm creates it first)."""
    if (uefi is None) != (nvram is None):
        raise ValueError("uefi and nvram go together: the firmware and the guest's NVRAM file")
    if io not in ("native", "threads", "io_uring"):
        raise ValueError(f"io must be native, threads or io_uring, not {io!r}")

    def attr(value: object) -> str:
        return quoteattr(str(value))

    channel = ("    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/>"
               "</channel>\n") if guest_agent else ""  # fmt: skip
    machine, firmware = "pc", ""
    if uefi is not None and nvram is not None:
        # q35: OVMF's usual machine (its flash and SMBus need the ICH9 chipset's layout).
        machine = "q35"
        firmware = (f"    <loader readonly='yes' type='pflash'>{escape(str(uefi.code))}</loader>\n"
                    f"    <nvram template={attr(uefi.vars_template)}>{escape(str(nvram))}"
                    "</nvram>\n")  # fmt: skip

    return f"""<domain type='qemu'>
  <name>{escape(name)}</name>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='{machine}'>hvm</type>
{firmware}    <kernel>{escape(str(kernel))}</kernel>
    <initrd>{escape(str(initrd))}</initrd>
    <cmdline>{escape(cmdline)}</cmdline>
  </os>
  <features><acpi/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type={attr(disk_format)} cache='none' io={attr(io)}/>
      <source file={attr(disk)}/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'>
      <source path={attr(console_log)} append='on'/>
      <target port='0'/>
    </serial>
{channel}    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def install_vm(
    vm_dir: Path,
    guest: Guest,
    *,
    name: str,
    console_log: Path,
    cmdline: str | None = None,
    disk_format: str = "qcow2",
    disk_mib: int = 64,
    memory_mib: int | None = None,
    io: str = "native",
    guest_agent: bool = False,
    uefi: Firmware | None = None,
) -> VmFiles:
    """Copy the guest's kernel and initrd into ``vm_dir``, create its disk there (if absent)
    and write ``domain.xml`` (default command line: the records mode, unbounded).
    ``uefi``: also ``nvram.fd``, a copy of the firmware's variable template (if absent).
    ``memory_mib`` defaults to 128 MiB, :data:`UEFI_MEMORY_MIB` for a UEFI guest.
    Installing again rewrites the XML and keeps the disk and the NVRAM."""
    if memory_mib is None:
        memory_mib = 128 if uefi is None else UEFI_MEMORY_MIB
    vm_dir.mkdir(parents=True, exist_ok=True)
    console_log.parent.mkdir(parents=True, exist_ok=True)
    kernel, initrd = vm_dir / "vmlinuz", vm_dir / "initrd.img"
    for src, dst in ((guest.kernel, kernel), (guest.initrd, initrd)):
        shutil.copyfile(src, dst)
    disk = vm_dir / f"disk.{disk_format}"
    if not disk.exists():
        create_disk(disk, disk_mib, disk_format)
    nvram = vm_dir / "nvram.fd" if uefi is not None else None
    if uefi is not None and nvram is not None and not nvram.exists():
        shutil.copyfile(uefi.vars_template, nvram)
    xml_path = vm_dir / "domain.xml"
    xml_path.write_text(domain_xml(
        name, kernel=kernel, initrd=initrd, cmdline=cmdline or guest.cmdline(), disk=disk,
        console_log=console_log, disk_format=disk_format, memory_mib=memory_mib, io=io,
        guest_agent=guest_agent, uefi=uefi, nvram=nvram,
    ))  # fmt: skip
    return VmFiles(
        name,
        vm_dir,
        kernel,
        initrd,
        disk,
        disk_format,
        console_log,
        xml_path,
        memory_mib,
        io,
        guest_agent,
        uefi,
        nvram,
    )


def with_cmdline(vm: VmFiles, cmdline: str) -> str:
    """The domain XML of ``vm`` with another kernel command line (same files): e.g. the
    ready mode for one boot without rewriting domain.xml."""
    return domain_xml(
        vm.name, kernel=vm.kernel, initrd=vm.initrd, cmdline=cmdline, disk=vm.disk,
        console_log=vm.console_log, disk_format=vm.disk_format, memory_mib=vm.memory_mib,
        io=vm.io, guest_agent=vm.guest_agent, uefi=vm.uefi, nvram=vm.nvram,
    )  # fmt: skip
