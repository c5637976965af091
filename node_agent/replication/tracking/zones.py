"""Zones and the pure record of what changed while a module ran without its peer (DESIGN §5).

A file is cut into fixed zones (default 1 MiB). ``ChangeSet.record(op)`` turns each
replicated operation into *mutations* (small JSON-friendly lists) and returns only the
ones that add something new -- the persistent bitmap journals exactly those, so a
write into an already dirty zone costs no I/O. Replaying the mutations in order
rebuilds the same ChangeSet (``apply``). Pure: no clock, no files.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import IntFlag
from typing import Any

from node_agent.replication import ops

DEFAULT_ZONE_SIZE = 1 << 20

# fallocate(2) mode bits (linux/falloc.h)
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_COLLAPSE_RANGE = 0x08
FALLOC_FL_ZERO_RANGE = 0x10
FALLOC_FL_INSERT_RANGE = 0x20
RENAME_EXCHANGE = 0x02

# A mutation is a list: ["z", path, [zones]] | ["t", path, zone] | ["f", path, flags]
#                      | ["rm", path] | ["mv", src, dst, exchange]
Mutation = list[Any]


class Change(IntFlag):
    """Why a path is namespace dirty. RENAMED and LINKED mean the name (or, for a renamed
    directory, anything under it) may now hold another file than the secondary's same
    name: the planner hash-compares those instead of trusting their zones."""

    NONE = 0
    CREATED = 1
    REMOVED = 2
    RENAMED = 4
    METADATA = 8  # mode, owner, times, xattrs, size
    LINKED = 16  # a hard link was made at this name


IDENTITY_CHANGED = Change.RENAMED | Change.LINKED


def check_zone_size(zone_size: int) -> int:
    if zone_size < 1 or zone_size & (zone_size - 1):
        raise ValueError(f"zone size must be a power of two, got {zone_size}")
    return zone_size


def zones_of(offset: int, length: int, zone_size: int = DEFAULT_ZONE_SIZE) -> range:
    """Indexes of the zones that bytes [offset, offset+length) touch."""
    if length <= 0:
        return range(0)
    shift = check_zone_size(zone_size).bit_length() - 1
    return range(offset >> shift, ((offset + length - 1) >> shift) + 1)


def zone_count(size: int, zone_size: int = DEFAULT_ZONE_SIZE) -> int:
    """How many zones a file of `size` bytes has (the last one may be partial)."""
    return -(-size // zone_size)


@dataclass
class FileChanges:
    zones: set[int] = field(default_factory=set)
    tail: int | None = None  # every zone >= tail is dirty (truncate, collapse/insert range)
    flags: Change = Change.NONE

    def has_data(self) -> bool:
        return bool(self.zones) or self.tail is not None

    def dirty_zones(self, size: int, zone_size: int) -> list[int]:
        """The dirty zones that exist in a file of `size` bytes, ascending."""
        n = zone_count(size, zone_size)
        out = {z for z in self.zones if z < n}
        if self.tail is not None:
            out.update(range(self.tail, n))
        return sorted(out)

    def copy(self) -> FileChanges:
        return FileChanges(set(self.zones), self.tail, self.flags)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or prefix == "" or path.startswith(prefix + "/")


def _moved(path: str, src: str, dst: str) -> str:
    rest = path[len(src) :]
    if src == "":
        return f"{dst}/{path}" if path else dst
    return dst + rest


def _runs(zones: Iterable[int]) -> list[list[int]]:
    """[start, count] runs: a sequentially written disk image serializes to a few numbers."""
    runs: list[list[int]] = []
    for z in sorted(zones):
        if runs and runs[-1][0] + runs[-1][1] == z:
            runs[-1][1] += 1
        else:
            runs.append([z, 1])
    return runs


class ChangeSet:
    """Per-file dirty zones and namespace flags, in a stable (sorted) order."""

    def __init__(self, zone_size: int = DEFAULT_ZONE_SIZE) -> None:
        self.zone_size = check_zone_size(zone_size)
        self._files: dict[str, FileChanges] = {}
        # A name with dirty zones was unlinked or replaced: another hard link may hold that
        # data. Links made while tracking are flagged LINKED; for pre-existing ones the
        # planner hash-compares changed files that had several links on the secondary.
        self.orphaned = False

    # -- queries ---------------------------------------------------------------------
    def __iter__(self) -> Iterator[tuple[str, FileChanges]]:
        for path in sorted(self._files):
            yield path, self._files[path]

    def __len__(self) -> int:
        return len(self._files)

    def __contains__(self, path: object) -> bool:
        return path in self._files

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ChangeSet):
            return NotImplemented
        return (self.zone_size, self.orphaned, self._files) == (
            other.zone_size,
            other.orphaned,
            other._files,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def get(self, path: str) -> FileChanges | None:
        return self._files.get(path)

    def is_empty(self) -> bool:
        return not self._files and not self.orphaned

    def is_dirty(self, path: str, zone: int) -> bool:
        fc = self._files.get(path)
        return fc is not None and (zone in fc.zones or (fc.tail is not None and zone >= fc.tail))

    def namespace_dirty(self, path: str) -> bool:
        fc = self._files.get(path)
        return fc is not None and fc.flags != Change.NONE

    def copy(self) -> ChangeSet:
        out = ChangeSet(self.zone_size)
        out._files = {p: fc.copy() for p, fc in self._files.items()}
        out.orphaned = self.orphaned
        return out

    # -- recording -------------------------------------------------------------------
    def record(self, op: ops.Op) -> list[Mutation]:
        """Apply what `op` changes; return only the mutations that added something."""
        done: list[Mutation] = []
        for m in self._mutations(op):
            if self._is_new(m):
                self.apply(m)
                done.append(m)
        return done

    def _mutations(self, op: ops.Op) -> list[Mutation]:
        zs = self.zone_size
        meta = int(Change.METADATA)
        match op:
            case ops.Write(path=p, offset=off, data=data):
                return [["z", p, list(zones_of(off, len(data), zs))]]
            case ops.Truncate(path=p, size=size):
                return [["t", p, size // zs], ["f", p, meta]]
            case ops.Fallocate(path=p, mode=mode, offset=off, length=length):
                if mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE):
                    return [["t", p, off // zs], ["f", p, meta]]  # data after offset shifts
                out: list[Mutation] = [] if mode & FALLOC_FL_KEEP_SIZE else [["f", p, meta]]
                if mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE):
                    out.insert(0, ["z", p, list(zones_of(off, length, zs))])
                # Plain preallocation changes no byte: marking it would resend gigabytes of zeros.
                return out
            case ops.Create(path=p):
                # A new file: every byte at this name is new (the secondary's old file differs).
                return [["t", p, 0], ["f", p, int(Change.CREATED)]]
            case ops.Mknod() | ops.Mkdir() | ops.Symlink():
                return [["f", op.path, int(Change.CREATED)]]
            case ops.Link(src=src, dst=dst):
                linked = int(Change.LINKED | Change.METADATA)
                # Both names now reach one inode: writes through either must reach both.
                return [["f", dst, int(Change.CREATED | Change.LINKED)], ["f", src, linked]]
            case ops.Unlink(path=p) | ops.Rmdir(path=p):
                return [["rm", p], ["f", p, int(Change.REMOVED)]]
            case ops.Rename(src=src, dst=dst, flags=flags):
                renamed = int(Change.RENAMED)
                exchange = bool(flags & RENAME_EXCHANGE)
                return [["mv", src, dst, exchange], ["f", src, renamed], ["f", dst, renamed]]
            case ops.Chmod() | ops.Chown() | ops.Utimens() | ops.SetXattr() | ops.RemoveXattr():
                return [["f", op.path, meta]]
            case ops.Fsync():
                return []
        raise TypeError(f"not a replicated operation: {op!r}")

    def _is_new(self, m: Mutation) -> bool:
        kind = m[0]
        fc = self._files.get(m[1])
        if kind == "z":
            new = [z for z in m[2] if not self.is_dirty(m[1], z)]
            m[2] = new  # journal only the zones that were not dirty yet
            return bool(new)
        if kind == "t":
            return fc is None or fc.tail is None or m[2] < fc.tail
        if kind == "f":
            return fc is None or (m[2] & ~fc.flags) != 0
        if kind == "rm":
            return fc is not None and fc.has_data()
        src, dst = m[1], m[2]
        return any(_under(p, src) or _under(p, dst) for p in self._files)

    def apply(self, m: Mutation) -> None:
        """Apply one mutation (used by record and to replay a journal)."""
        kind = m[0]
        if kind == "mv":
            self._move(m[1], m[2], bool(m[3]))
            return
        if kind == "rm":
            fc = self._files.get(m[1])
            if fc is not None and fc.has_data():
                self.orphaned = True
                fc.zones.clear()
                fc.tail = None
            return
        fc = self._files.setdefault(m[1], FileChanges())
        if kind == "z":
            fc.zones.update(m[2])
            if fc.tail is not None:
                fc.zones = {z for z in fc.zones if z < fc.tail}
        elif kind == "t":
            fc.tail = m[2] if fc.tail is None else min(fc.tail, m[2])
            fc.zones = {z for z in fc.zones if z < fc.tail}
        elif kind == "f":
            fc.flags |= Change(m[2])
        else:
            raise ValueError(f"unknown mutation {m!r}")

    def _move(self, src: str, dst: str, exchange: bool) -> None:
        if _under(dst, src) or (exchange and _under(src, dst)):
            return  # the kernel refuses these (EINVAL): nothing moved
        from_src = {p: fc for p, fc in self._files.items() if _under(p, src)}
        from_dst = {p: fc for p, fc in self._files.items() if _under(p, dst)}
        for p in (*from_src, *from_dst):
            del self._files[p]
        for p, fc in from_src.items():
            self._files[_moved(p, src, dst)] = fc
        if exchange:
            for p, fc in from_dst.items():
                self._files[_moved(p, dst, src)] = fc
        elif any(fc.has_data() for fc in from_dst.values()):
            self.orphaned = True  # the replaced file may live on under another hard link

    def merge(self, other: ChangeSet) -> ChangeSet:
        """Union `other` into self (bitmap ∪ activity log); returns self."""
        if other.zone_size != self.zone_size:
            raise ValueError("cannot merge change sets with different zone sizes")
        for path, ofc in other._files.items():
            fc = self._files.setdefault(path, FileChanges())
            fc.flags |= ofc.flags
            if ofc.tail is not None:
                fc.tail = ofc.tail if fc.tail is None else min(fc.tail, ofc.tail)
            fc.zones |= ofc.zones
            if fc.tail is not None:
                fc.zones = {z for z in fc.zones if z < fc.tail}
        self.orphaned |= other.orphaned
        return self

    # -- serialization (for the bitmap snapshot) -----------------------------------
    def to_dict(self) -> dict[str, Any]:
        files = {p: [_runs(fc.zones), fc.tail, int(fc.flags)] for p, fc in self}
        return {"zone_size": self.zone_size, "orphaned": self.orphaned, "files": files}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ChangeSet:
        out = cls(int(raw["zone_size"]))
        out.orphaned = bool(raw["orphaned"])
        for path, (runs, tail, flags) in raw["files"].items():
            zones = {z for start, count in runs for z in range(start, start + count)}
            out._files[str(path)] = FileChanges(zones, tail, Change(flags))
        return out


_HOLE = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE


def data_zones(op: ops.Op, zone_size: int) -> list[int]:
    """Zones whose bytes ``op`` writes (what a resync could send instead)."""
    if isinstance(op, ops.Write):
        return list(zones_of(op.offset, len(op.data), zone_size))
    if isinstance(op, ops.Fallocate) and op.mode & _HOLE:
        return list(zones_of(op.offset, op.length, zone_size))
    return []


def changeset_ops(changes: ChangeSet) -> list[ops.Op]:
    """Synthetic ops that mark the same zones in a bitmap (merging a record into it)."""
    zs, out = changes.zone_size, []
    for path, fc in changes:
        out.extend(ops.Write(path, z * zs, b"\0") for z in sorted(fc.zones))
        if fc.tail is not None:
            out.append(ops.Truncate(path, fc.tail * zs))
    return out
