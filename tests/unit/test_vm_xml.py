"""A VM module's domain definition: what must be replicated is (issue 11, point 5)."""

from __future__ import annotations

import pytest

from node_agent.resources.vm_xml import DomainXmlError, parse_domain, problems

DIR = "/srv/vms/vms"


def domain(disks: str = "", os_extra: str = "", memory: str = "<memory unit='MiB'>256</memory>"
           ) -> str:  # fmt: skip
    return f"""<domain type='qemu'>
  <name>vms</name>
  {memory}
  <vcpu>2</vcpu>
  <os><type arch='x86_64'>hvm</type>{os_extra}</os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='{DIR}/system.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    {disks}
  </devices>
</domain>"""


def test_what_is_read_of_a_definition() -> None:
    spec = parse_domain(domain(os_extra=f"<kernel>{DIR}/vmlinuz</kernel>"), "vms.xml")
    assert (spec.name, spec.hypervisor, spec.vcpus) == ("vms", "qemu", 2)
    assert spec.memory_bytes == 256 << 20
    (disk,) = spec.disks
    assert (disk.target, disk.kind, disk.source, disk.fmt) == (
        "vda",
        "file",
        f"{DIR}/system.qcow2",
        "qcow2",
    )
    assert spec.files == (("kernel", f"{DIR}/vmlinuz"),)
    assert problems(spec, [DIR]) == []


def test_memory_units_default_to_kib() -> None:
    spec = parse_domain(domain(memory="<memory>524288</memory>"), "x")
    assert spec.memory_bytes == 512 << 20


REFUSED = [
    ("block device", "<disk type='block' device='disk'><source dev='/dev/sdb'/>"
     "<target dev='vdb'/></disk>", "disk vdb is the block device /dev/sdb"),
    ("outside", "<disk type='file' device='disk'><driver type='raw'/>"
     "<source file='/var/lib/libvirt/images/data.img'/><target dev='vdb'/></disk>",
     "disk vdb (/var/lib/libvirt/images/data.img) is outside the replicated directory"),
    ("escaping with ..", f"<disk type='file' device='disk'><source file='{DIR}/../x.img'/>"
     "<target dev='vdb'/></disk>", "is outside the replicated directory"),
    ("unknown format", f"<disk type='file' device='disk'><driver type='vmdk'/><source "
     f"file='{DIR}/d.vmdk'/><target dev='vdb'/></disk>", "has the image format 'vmdk'"),
    ("network disk", "<disk type='network' device='disk'><source protocol='rbd' name='p/i'/>"
     "<target dev='vdb'/></disk>", "is a network disk"),
]  # fmt: skip


@pytest.mark.parametrize(("disk", "fragment"), [r[1:] for r in REFUSED],
                         ids=[r[0] for r in REFUSED])  # fmt: skip
def test_what_cannot_be_replicated_is_named(disk: str, fragment: str) -> None:
    found = problems(parse_domain(domain(disk), "x"), [DIR])
    assert len(found) == 1 and fragment in found[0], found


def test_nvram_must_be_replicated_firmware_code_need_not() -> None:
    extra = ("<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>"
             "<nvram>/var/lib/libvirt/qemu/nvram/vms_VARS.fd</nvram>")  # fmt: skip
    found = problems(parse_domain(domain(os_extra=extra), "x"), [DIR])
    assert found == ["the nvram (/var/lib/libvirt/qemu/nvram/vms_VARS.fd) is outside the "
                     f"replicated directory ({DIR})"]  # fmt: skip
    ok = extra.replace("/var/lib/libvirt/qemu/nvram", DIR)
    assert problems(parse_domain(domain(os_extra=ok), "x"), [DIR]) == []


def test_an_install_cdrom_outside_is_fine() -> None:
    cdrom = ("<disk type='file' device='cdrom'><source file='/isos/debian.iso'/>"
             "<target dev='sda'/><readonly/></disk>")  # fmt: skip
    assert problems(parse_domain(domain(cdrom), "x"), [DIR]) == []


@pytest.mark.parametrize(("text", "fragment"), [
    ("<domain><name>x</name>", "not valid XML"),
    ("<vm/>", "not <domain>"),
    ("<domain type='qemu'><memory>1</memory></domain>", "no <name>"),
    ("<domain type='qemu'><name>x</name></domain>", "no <memory>"),
    ("<domain><name>x</name><memory unit='parsec'>1</memory></domain>", "unknown memory unit"),
])  # fmt: skip
def test_unusable_definitions_say_why(text: str, fragment: str) -> None:
    with pytest.raises(DomainXmlError, match=fragment) as info:
        parse_domain(text, "/srv/vms/vms/vms.xml")
    assert "/srv/vms/vms/vms.xml" in str(info.value)
