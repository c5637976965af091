"""The VMs a node's libvirt knows, with their disks (issue 11, point 3): what the console
and the setup wizard offer to protect, and what `mirrorpair vm list` prints.

Blocking (libvirt-python): run it in a worker thread.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from node_agent.resources.common import ResourceError
from node_agent.resources.libvirt_conn import require_libvirt
from node_agent.resources.vm_xml import DomainXmlError, parse_domain
from protos import mirrorpair_pb2 as pb

_STATES = {0: "no state", 1: "running", 2: "blocked", 3: "paused", 4: "shutting down",
           5: "shut off", 6: "crashed", 7: "suspended"}  # fmt: skip


def list_vms(uri: str, protected: Mapping[str, str]) -> list[pb.VmInfo]:
    """Every domain at ``uri``, defined or running; ``protected`` maps a domain name to
    the module that runs it."""
    lv = require_libvirt()
    try:
        conn = lv.openReadOnly(uri)
    except lv.libvirtError as e:
        raise ResourceError(f"libvirt at {uri} is not reachable: {e.get_error_message()} "
                            "(is libvirtd running?)") from None  # fmt: skip
    try:
        out = []
        for dom in conn.listAllDomains(0):
            name = dom.name()
            info = pb.VmInfo(domain=name, state=_STATES.get(dom.state()[0], "unknown"),
                             persistent=bool(dom.isPersistent()),
                             module=protected.get(name, ""))  # fmt: skip
            try:
                spec = parse_domain(dom.XMLDesc(0), f"domain {name}")
            except (DomainXmlError, lv.libvirtError):
                out.append(info)  # listed, without details
                continue
            info.vcpus, info.memory_bytes = spec.vcpus, spec.memory_bytes
            for d in spec.disks:
                if d.source:
                    info.disks.add(target=d.target, path=d.source, size_bytes=_size(d.source))
            out.append(info)
        return sorted(out, key=lambda v: v.domain)
    finally:
        conn.close()


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
