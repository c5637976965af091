"""What a vm module's card says of its guest (issue 11): its state, vCPUs, memory, disks
and how long its last boot took -- taken from the status of the node that runs it, so
that what is shown is what that node reports now (never a node's stale copy, never a
node that does not answer)."""

from __future__ import annotations

from dataclasses import dataclass

from console.model.cluster import NODE_IDS, ClusterModel
from console.model.states import format_duration, is_primary
from protos import mirrorpair_pb2 as pb

# The driver's activities while a start is under way (ModuleStatus.activity).
STARTING, BOOTING = "starting", "booting"
STOPPING, FORCE_STOPPING = "stopping", "force-stopping"
START_ACTIVITIES = frozenset({STARTING, BOOTING})
STOP_ACTIVITIES = frozenset({STOPPING, FORCE_STOPPING})

_MIB, _GIB = 1 << 20, 1 << 30


def format_size(count: int) -> str:
    """Memory and disk sizes as an admin reads them: "256 MiB", "1.5 GiB", "4 GiB"."""
    if count >= _GIB:
        return f"{count / _GIB:.1f}".removesuffix(".0") + " GiB"
    if count >= _MIB:
        return f"{count / _MIB:.1f}".removesuffix(".0") + " MiB"
    if count >= 1024:
        return f"{count / 1024:.0f} KiB"
    return f"{count} B"


def format_seconds(seconds: float) -> str:
    """A measured duration: "0.8s", "5.1s" under ten seconds (a boot's tenths matter),
    else as format_duration ("14s", "2m 05s")."""
    if seconds < 9.95:
        return f"{seconds:.1f}s"
    return format_duration(seconds)


@dataclass(frozen=True)
class VmDiskFacts:
    target: str  # vda, sda...
    size_bytes: int  # 0: the node could not read the image's size
    path: str

    @property
    def text(self) -> str:
        return f"{self.target} {format_size(self.size_bytes) if self.size_bytes else '?'}"


@dataclass(frozen=True)
class VmFacts:
    node_id: str  # whose status this is: the node running the guest (else its primary)
    domain: str
    state: str  # as that node reports it: running, shut off, paused on an I/O error...
    vcpus: int
    memory_bytes: int
    disks: tuple[VmDiskFacts, ...]
    last_boot_s: float  # the last start until its checks passed; 0 = not measured
    booting: bool  # that node is starting it, or it started and its checks have not passed

    @property
    def state_text(self) -> str:
        state = self.state or ("starting" if self.booting else "state unknown")
        return f"{state} on {self.node_id}"

    @property
    def size_text(self) -> str:
        """ "2 vCPUs · 256 MiB"."""
        cpus = f"{self.vcpus} vCPU" + ("" if self.vcpus == 1 else "s")
        return f"{cpus} · {format_size(self.memory_bytes)}"

    @property
    def disks_text(self) -> str:
        return " · ".join(d.text for d in self.disks) if self.disks else "none"

    @property
    def disks_label(self) -> str:
        """ "disk vda 64 MiB" or "disks vda 64 MiB · vdb 1.5 GiB" (image file sizes)."""
        return ("disk " if len(self.disks) == 1 else "disks ") + self.disks_text

    @property
    def boot_time(self) -> str:
        """ "booting…" while it starts, "5.1s" once measured, else ""."""
        if self.booting:
            return "booting…"
        return format_seconds(self.last_boot_s) if self.last_boot_s > 0 else ""

    @property
    def boot_text(self) -> str:
        """ "booting…" while it starts, "last boot 5.1s" once measured, else ""."""
        t = self.boot_time
        return t if not t or self.booting else f"last boot {t}"


def _runs_it(m: pb.ModuleStatus) -> bool:
    return m.resource_running or m.activity in START_ACTIVITIES


def vm_node(model: ClusterModel, module: str) -> str | None:
    """The node whose status speaks for the guest: the one running (or starting) it,
    else the primary, else any node that answers and has the module; None if none."""
    here = {n: m for n in NODE_IDS if (m := model.module_status(n, module)) is not None}
    for pick in (_runs_it, lambda m: is_primary(m.state), lambda m: True):
        node = next((n for n, m in here.items() if pick(m)), None)
        if node is not None:
            return node
    return None


def vm_facts(model: ClusterModel, module: str) -> VmFacts | None:
    """The guest's facts for a vm module's card; None for an app module, or when no node
    that answers reports the module."""
    node = vm_node(model, module)
    m = model.module_status(node, module) if node is not None else None
    if m is None or m.kind != "vm":
        return None
    vm = m.vm
    booting = m.activity in START_ACTIVITIES
    return VmFacts(
        node_id=node or "",
        domain=vm.domain,
        state=vm.state or m.resource_state,
        vcpus=vm.vcpus,
        memory_bytes=vm.memory_bytes,
        disks=tuple(VmDiskFacts(d.target, d.size_bytes, d.path) for d in vm.disks),
        last_boot_s=0.0 if booting else m.last_start_s,
        booting=booting,
    )
