"""The guest's records, read back on the host from its disk image.

Format (written by node_agent/demo_vm/guest_init.sh): record n fills the 4 KiB slot n
(slot 0 unused) with 32 identical 128-byte lines
``MPREC <n> <boot> <sha256 hex of "MPREC <n> <boot>">``, space-padded, each ending in a
newline.

    scan = read_records(vm.disk)
    assert scan.intact(last_reported) and scan.consistent
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from node_agent.demo_vm.disk import disk_bytes

SLOT = 4096
LINE = 128
LINES = SLOT // LINE


def record_slot(n: int, boot: int) -> bytes:
    """The exact 4 KiB the guest writes for record ``n`` in boot ``boot``."""
    digest = hashlib.sha256(f"MPREC {n} {boot}".encode()).hexdigest()
    line = f"MPREC {n} {boot} {digest}".ljust(LINE - 1).encode() + b"\n"
    return line * LINES


@dataclass
class RecordScan:
    last: int = 0  # the end of the unbroken run 1..last of intact records
    boots: dict[int, int] = field(default_factory=dict)  # record -> the boot that wrote it
    bad: list[int] = field(default_factory=list)  # slots written but not intact (torn, wrong)
    beyond: list[int] = field(default_factory=list)  # intact records after the first gap

    @property
    def consistent(self) -> bool:
        """What a crash may leave: one unbroken run, and at most the slot after it torn (the
        record being written when it happened, which the guest had not reported)."""
        return not self.beyond and set(self.bad) <= {self.last + 1}

    def intact(self, upto: int) -> bool:
        """Every record 1..upto is on the disk, intact."""
        return self.last >= upto


def scan_slot(slot: bytes, n: int) -> int | None:
    """The boot that wrote record ``n`` if ``slot`` holds it intact, else None."""
    fields = slot[: LINE - 1].split()
    if len(fields) != 4 or fields[0] != b"MPREC" or fields[1] != str(n).encode():
        return None
    try:
        boot = int(fields[2])
    except ValueError:
        return None
    return boot if slot == record_slot(n, boot) else None


def read_records(image: Path) -> RecordScan:
    """Every slot of the image: the unbroken run from record 1, slots that were written but
    are not intact records, and intact records after a gap (the guest never leaves one)."""
    data = disk_bytes(image)
    scan = RecordScan()
    gap = False
    for n in range(1, len(data) // SLOT):
        slot = data[n * SLOT : (n + 1) * SLOT]
        boot = scan_slot(slot, n)
        if boot is None:
            if slot.strip(b"\0"):
                scan.bad.append(n)
            gap = True
            continue
        scan.boots[n] = boot
        if gap:
            scan.beyond.append(n)
        else:
            scan.last = n
    return scan
