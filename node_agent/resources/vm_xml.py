"""A VM module's domain definition, read and checked before libvirt sees it (pure).

The definition (libvirt domain XML) lives in the module's replicated directory, with
the disk images, NVRAM and any kernel/initrd it boots: what the VM needs must be in the
copy that is replicated, or the other node boots something else (or nothing).
"""

from __future__ import annotations

import posixpath
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

# Image formats a replicated disk may have: QEMU's own, whose every byte is in the file.
KNOWN_FORMATS = ("raw", "qcow2")
_UNITS = {"b": 1, "bytes": 1, "k": 1024, "kib": 1024, "kb": 1000, "m": 1024**2, "mib": 1024**2,
          "mb": 1000**2, "g": 1024**3, "gib": 1024**3, "gb": 1000**3, "t": 1024**4,
          "tib": 1024**4, "tb": 1000**4}  # fmt: skip


class DomainXmlError(ValueError):
    """The definition cannot be used; the message says what to change."""


@dataclass(frozen=True)
class Disk:
    target: str  # vda, sda...
    kind: str  # the <disk type=...>: file, block, network, volume
    device: str  # disk, cdrom, floppy, lun
    source: str  # the image path ("" for an empty cdrom)
    fmt: str  # the <driver type=...>; "" when not given
    readonly: bool


@dataclass(frozen=True)
class DomainSpec:
    name: str
    hypervisor: str  # <domain type=...>: kvm, qemu
    memory_bytes: int
    vcpus: int
    disks: tuple[Disk, ...]
    files: tuple[tuple[str, str], ...]  # (what, path) of kernel, initrd, dtb, nvram, loader


def parse_domain(text: str, where: str) -> DomainSpec:
    """Read what matters of a domain XML; DomainXmlError naming ``where`` if unusable."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise DomainXmlError(f"{where}: not valid XML: {e}") from None
    if root.tag != "domain":
        raise DomainXmlError(f"{where}: the root element is <{root.tag}>, not <domain>")
    name = (root.findtext("name") or "").strip()
    if not name:
        raise DomainXmlError(f"{where}: the domain has no <name>")
    disks = []
    for d in root.iterfind("devices/disk"):
        source = d.find("source")
        path = ""
        if source is not None:
            path = source.get("file") or source.get("dev") or source.get("name") or ""
        driver = d.find("driver")
        disks.append(Disk(
            target=(d.find("target").get("dev", "") if d.find("target") is not None else ""),
            kind=d.get("type", "file"), device=d.get("device", "disk"), source=path,
            fmt=driver.get("type", "") if driver is not None else "",
            readonly=d.find("readonly") is not None,
        ))  # fmt: skip
    files = [(tag, (root.findtext(f"os/{tag}") or "").strip())
             for tag in ("kernel", "initrd", "dtb", "nvram", "loader")]  # fmt: skip
    return DomainSpec(
        name=name,
        hypervisor=root.get("type", ""),
        memory_bytes=_memory(root, where),
        vcpus=_int(root.findtext("vcpu") or "1", f"{where}: <vcpu>"),
        disks=tuple(disks),
        files=tuple((what, path) for what, path in files if path),
    )


def _int(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise DomainXmlError(f"{what} is not a number: {text.strip()!r}") from None


def _memory(root: ET.Element, where: str) -> int:
    mem = root.find("currentMemory")
    mem = mem if mem is not None else root.find("memory")
    if mem is None:
        raise DomainXmlError(f"{where}: the domain has no <memory>")
    unit = mem.get("unit", "KiB").lower()
    if unit not in _UNITS:
        raise DomainXmlError(f"{where}: unknown memory unit {mem.get('unit')!r}")
    return _int(mem.text or "", f"{where}: <memory>") * _UNITS[unit]


def _inside(path: str, directories: Sequence[str]) -> bool:
    p = posixpath.normpath(path)
    return any(p.startswith(posixpath.normpath(d).rstrip("/") + "/") for d in directories)


def problems(spec: DomainSpec, directories: Sequence[str]) -> list[str]:
    """Why this definition cannot be protected as it is (empty: it can). Every disk and
    file the VM writes or boots from must sit in a replicated directory."""
    out: list[str] = []
    where = ", ".join(directories)
    for d in spec.disks:
        if d.device in ("cdrom", "floppy") and (d.readonly or not d.source):
            continue  # install media: read only, the guest never writes it
        what = f"disk {d.target or '?'}"
        if d.kind == "block":
            out.append(f"{what} is the block device {d.source}: only image files in the "
                       "replicated directory can be replicated")  # fmt: skip
        elif d.kind != "file":
            out.append(f"{what} is a {d.kind} disk: only image files in the replicated "
                       "directory can be replicated")  # fmt: skip
        elif not _inside(d.source, directories):
            out.append(f"{what} ({d.source}) is outside the replicated directory ({where})")
        elif d.fmt and d.fmt not in KNOWN_FORMATS:
            out.append(f"{what} ({d.source}) has the image format {d.fmt!r}: use one of "
                       f"{', '.join(KNOWN_FORMATS)}")  # fmt: skip
    for what, path in spec.files:
        if what == "loader":
            continue  # firmware code: read only, installed on each node
        if not _inside(path, directories):
            out.append(f"the {what} ({path}) is outside the replicated directory ({where})")
    return out
