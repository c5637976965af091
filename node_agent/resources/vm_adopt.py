"""Adopt an existing libvirt domain (issue 11, point 3): gather its definition and disks
into one directory, which a vm module then replicates, and hand it to MirrorPair.

Refused, with the reason, when the VM runs (its disks cannot move under it), is not
defined, has snapshots (they refer to the images where they are), or has a disk that
cannot be replicated: a block or network device, or a qcow2 backing chain (flatten it
first). Otherwise: every disk image, the NVRAM and a direct-boot kernel/initrd move
into the directory (a rename on one filesystem, else copy, sync, remove), the definition
is rewritten to point there and written as ``<name>.xml``, and the domain is undefined:
from now on the module defines it, transiently, on the node that serves it.

Resumable: a move already done (source gone, destination there) is skipped, and the
domain is undefined last, so an agent killed halfway finishes it when asked again.
Blocking (libvirt-python, file copies): run it in a worker thread.
"""

from __future__ import annotations

import os
import posixpath
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from node_agent.replication.fuse.underneath import fsync_dir, move_entry
from node_agent.resources.common import ResourceError
from node_agent.resources.libvirt_conn import require_libvirt
from node_agent.resources.vm import backing_files
from node_agent.resources.vm_xml import parse_domain


class AdoptRefused(ResourceError):
    """The domain cannot be adopted as it is; the message says what to do."""


@dataclass(frozen=True)
class AdoptPlan:
    domain: str
    directory: str
    moves: tuple[tuple[str, str], ...]  # (from, to)
    xml: str  # the definition, pointing into the directory
    config: str  # the module's section for the cluster config


def plan_adoption(uri: str, domain: str, directory: str, module: str, node: str) -> AdoptPlan:
    """What adopting ``domain`` into ``directory`` would do; AdoptRefused if it cannot."""
    lv = require_libvirt()
    directory = posixpath.normpath(directory)
    if not posixpath.isabs(directory):
        raise AdoptRefused(f"the directory must be an absolute path, not {directory!r}")
    try:
        conn = lv.open(uri)
    except lv.libvirtError as e:
        raise ResourceError(f"libvirt at {uri} is not reachable: {e.get_error_message()}") from None
    try:
        try:
            dom = conn.lookupByName(domain)
        except lv.libvirtError:
            raise AdoptRefused(f"{node}'s libvirt has no domain named {domain!r}") from None
        if dom.isActive():
            raise AdoptRefused(f"{domain} is running: shut it down first (virsh shutdown "
                               f"{domain}); its disks cannot move under it")  # fmt: skip
        if not dom.isPersistent():
            raise AdoptRefused(f"{domain} is not defined on {node} (transient)")
        if (n := dom.snapshotNum(0)) > 0:
            raise AdoptRefused(f"{domain} has {n} snapshot(s), which refer to its images "
                               "where they are: delete or merge them first")  # fmt: skip
        text = dom.XMLDesc(lv.VIR_DOMAIN_XML_INACTIVE | lv.VIR_DOMAIN_XML_SECURE)
    finally:
        conn.close()
    return _plan(text, domain, directory, module or domain, node)


def _plan(text: str, domain: str, directory: str, module: str, node: str) -> AdoptPlan:
    spec = parse_domain(text, f"domain {domain}")
    why = []
    for d in spec.disks:
        if d.device in ("cdrom", "floppy") and (d.readonly or not d.source):
            continue
        if d.kind != "file":
            why.append(f"disk {d.target} is a {d.kind} device ({d.source}): only image files "
                       "can be replicated")  # fmt: skip
    moved = [d for d in spec.disks if d.kind == "file" and d.source
             and not (d.device in ("cdrom", "floppy") and d.readonly)]  # fmt: skip
    for d in moved:
        if d.fmt == "qcow2" and backing_files(d.source):
            why.append(f"disk {d.target} ({d.source}) has a backing chain: flatten it first "
                       f"(qemu-img convert -O qcow2 {d.source} NEW)")  # fmt: skip
    if why:
        raise AdoptRefused(f"{domain} cannot be adopted: " + "; ".join(why))
    root = ET.fromstring(text)
    moves: dict[str, str] = {}

    def dest(path: str, label: str) -> str:
        if path in moves:
            return moves[path]
        name = posixpath.basename(path)
        target = posixpath.join(directory, name)
        if target in moves.values():
            target = posixpath.join(directory, f"{label}-{name}")
        moves[path] = target
        return target

    for disk in root.iterfind("devices/disk"):
        source = disk.find("source")
        if source is None or not source.get("file") or disk.find("readonly") is not None:
            continue
        target = disk.find("target")
        source.set(
            "file",
            dest(
                source.get("file", ""), target.get("dev", "disk") if target is not None else "disk"
            ),
        )
    for tag in ("kernel", "initrd", "dtb", "nvram"):
        el = root.find(f"os/{tag}")
        if el is not None and (el.text or "").strip():
            el.text = dest(el.text.strip(), tag)
    config = (f'[[module]]\nname = "{module}"\nkind = "vm"\npreferred = "{node}"\n'
              f'directories = ["{directory}"]\ndomain = "{domain}.xml"\n')  # fmt: skip
    return AdoptPlan(domain, directory, tuple(moves.items()),
                     ET.tostring(root, encoding="unicode"), config)  # fmt: skip


def adopt(uri: str, plan: AdoptPlan) -> None:
    """Carry ``plan`` out (see the module docstring); ResourceError if a step fails."""
    lv = require_libvirt()
    directory = Path(plan.directory)
    directory.mkdir(parents=True, exist_ok=True)
    xml_path = directory / f"{plan.domain}.xml"
    tmp = xml_path.with_suffix(".xml.tmp")
    tmp.write_text(plan.xml + "\n", encoding="utf-8")
    try:
        for src, dst in plan.moves:
            s, d = Path(src), Path(dst)
            if not s.exists() and d.exists():
                continue  # moved by an earlier, interrupted adoption
            if d.exists():
                raise ResourceError(f"{dst} exists already: not overwriting it")
            if s.name == d.name:
                move_entry(s, d.parent)
            else:
                _rename_into(s, d)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, xml_path)
        fsync_dir(directory)
    except OSError as e:
        raise ResourceError(f"adopting {plan.domain} into {plan.directory}: {e}") from None
    try:
        conn = lv.open(uri)
        try:
            conn.lookupByName(plan.domain).undefineFlags(
                lv.VIR_DOMAIN_UNDEFINE_KEEP_NVRAM | lv.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
            )
        finally:
            conn.close()
    except lv.libvirtError as e:
        raise ResourceError(
            f"{plan.domain} moved into {plan.directory}, but libvirt could "
            f"not undefine it: {e.get_error_message()}"
        ) from None


def _rename_into(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst`` under another name (two disks with one file name)."""
    if os.stat(src.parent).st_dev == os.stat(dst.parent).st_dev:
        os.rename(src, dst)
        return
    staging = dst.parent / f".{src.name}.adopting"
    staging.mkdir(exist_ok=True)
    move_entry(src, staging)
    os.rename(staging / src.name, dst)
    staging.rmdir()
