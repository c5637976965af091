"""What a returning secondary needs: the resync plan (DESIGN §5, "reintegration"). Pure.

From the two listings and (when trustworthy) the change record, the plan lists:
1. `ops` -- namespace and metadata steps, in an order the secondary can apply one by
   one: remove entries whose type changed, create missing directories top-down,
   rename extra files that match a missing one by (size, mtime) instead of copying
   them, remove the remaining extra entries bottom-up, create missing files,
   symlinks, nodes and hard links, then sizes (Truncate), owners (Chown, before Chmod
   because chown clears set-id bits) and modes;
2. `send` -- (path, zones) to copy from the primary (all zones of a file created by the
   plan: the driver may skip the primary's holes there, since a new file reads zeros);
3. `needs_hash_compare` -- files whose differing zones must be found by comparing
   per-zone hashes on both sides (no trustworthy record, renamed guesses, fullsync);
4. `final_ops` -- Utimens, last, since writing data and entries changes times.
Symlinks get no Chmod (Linux has no link modes); Chown and Utimens must not follow links
(the secondary's Applier uses lchown / utimensat(AT_SYMLINK_NOFOLLOW)).
Extended attributes are not listed by the scan and so are not reconciled here.
"""

from __future__ import annotations

import stat
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from node_agent.replication import ops
from node_agent.replication.local.scan import DIR, FILE, OTHER, SYMLINK, Entry, Listing
from node_agent.replication.tracking.zones import (
    DEFAULT_ZONE_SIZE,
    IDENTITY_CHANGED,
    ChangeSet,
    FileChanges,
    zone_count,
)


@dataclass(frozen=True)
class ResyncPlan:
    ops: tuple[ops.Op, ...]
    send: tuple[tuple[str, tuple[int, ...]], ...]
    needs_hash_compare: tuple[str, ...]
    final_ops: tuple[ops.Op, ...]
    bytes_total: int  # bytes in `send` (hash-compared files add what differs, later)
    hash_bytes: int  # bytes each side reads to hash `needs_hash_compare`
    fullsync: bool

    def is_noop(self) -> bool:
        return not (self.ops or self.send or self.needs_hash_compare or self.final_ops)


def zone_bytes(size: int, zones: Iterable[int], zone_size: int) -> int:
    """Bytes that `zones` cover in a file of `size` bytes (the last zone may be partial)."""
    return sum(max(0, min(zone_size, size - z * zone_size)) for z in zones)


def differing_zones(primary: Mapping[int, bytes], secondary: Mapping[int, bytes]) -> list[int]:
    """Zones of the primary whose hash the secondary lacks or has differently."""
    return sorted(z for z, h in primary.items() if secondary.get(z) != h)


def _same_kind(p: Entry, s: Entry) -> bool:
    if p.kind != s.kind:
        return False
    if p.kind == SYMLINK:
        return p.target == s.target
    if p.kind == OTHER:
        return stat.S_IFMT(p.mode) == stat.S_IFMT(s.mode) and p.rdev == s.rdev
    return True


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


def _link_groups(listing: Listing, names: Iterable[str]) -> dict[tuple[int, int], list[str]]:
    """Hard-link groups (>= 2 names) among the given regular files, names sorted."""
    groups: dict[tuple[int, int], list[str]] = defaultdict(list)
    for n in names:
        e = listing[n]
        if e.kind == FILE and e.nlink > 1:
            groups[(e.dev, e.ino)].append(n)
    return {k: sorted(v) for k, v in groups.items() if len(v) > 1}


class _Planner:
    def __init__(
        self, p: Listing, s: Listing, dirty: ChangeSet | None, zone_size: int, fullsync: bool
    ) -> None:
        self.p, self.s, self.dirty, self.zs, self.fullsync = p, s, dirty, zone_size, fullsync
        self.ops: list[ops.Op] = []
        self.renamed_names = {path for path, fc in (dirty or ()) if fc.flags & IDENTITY_CHANGED}
        self.touched_dirs: set[str] = set()
        # Canonical name (smallest) of each primary hard-link group; data goes there.
        self.canon: dict[str, str] = {}
        self.group: dict[str, list[str]] = {}
        self.same = self._unchanged()  # never holds a file with several links
        self.rest_p = [n for n in p if n not in self.same]  # usually a small minority
        for names in _link_groups(p, self.rest_p).values():
            for n in names:
                self.canon[n] = names[0]
            self.group[names[0]] = names

    def _unchanged(self) -> set[str]:
        """Entries equal in every listed attribute that nothing else asks to look at.

        The fast path: a reintegration check of an unchanged tree of 1,000,000 entries
        must not cost more than the two scans.
        """
        out: set[str] = set()
        s, dirty = self.s, self.dirty
        for n, e in self.p.items():
            o = s.get(n)
            if o is None or e[1:7] != o[1:7] or e.target != o.target or e.rdev != o.rdev:
                continue  # kind, mode, uid, gid, size, mtime_ns, target or rdev differ
            if e.kind == FILE and (
                self.fullsync
                or e.nlink > 1
                or o.nlink > 1
                or (dirty is not None and (n in dirty or self._renamed(n)))
            ):
                continue
            out.add(n)
        return out

    def _remove(self, path: str) -> None:
        e = self.s[path]
        self.ops.append(ops.Rmdir(path) if e.kind == DIR else ops.Unlink(path))
        self.touched_dirs.add(_parent(path))

    def run(self) -> ResyncPlan:
        p, s, same = self.p, self.s, self.same
        rest_s = [n for n in s if n not in same]
        kept = {n for n in self.rest_p if n in s and _same_kind(p[n], s[n])}
        mismatched = sorted(n for n in self.rest_p if n in s and n not in kept)
        # Everything under an entry whose type changed goes first, bottom-up.
        early: set[str] = set()
        if mismatched:
            roots = tuple(mismatched)
            prefixes = tuple(r + "/" for r in roots)
            early = {n for n in rest_s if n in roots or n.startswith(prefixes)}
        extra = {n for n in rest_s if n not in kept and n not in early}
        for n in sorted(early, reverse=True):
            self._remove(n)
        missing = sorted(n for n in self.rest_p if n not in kept)
        for n in missing:
            if p[n].kind == DIR:
                self.ops.append(ops.Mkdir(n, stat.S_IMODE(p[n].mode)))
                self.touched_dirs.add(_parent(n))
        renamed = self._renames(extra, missing)
        detached = self._detached(kept)
        for n in sorted(extra - set(renamed.values()), reverse=True):
            self._remove(n)
        for n in sorted(detached):
            self._remove(n)
        created = {n for n in missing if n not in renamed} | detached
        self._create(created)
        # The secondary's entry each final path now corresponds to (None: freshly made).
        before: dict[str, Entry | None] = {n: s[n] for n in kept - detached}
        before.update({dst: s[src] for dst, src in renamed.items()})
        before.update(dict.fromkeys(created))
        self._metadata(before)
        send, compare = self._data(before, renamed)
        # Unchanged directories whose entries changed get their times back too.
        before.update({n: s[n] for n in self.touched_dirs & same})
        final = self._times(before, send, compare)
        sizes = {path: p[path].size for path, _ in send}
        return ResyncPlan(
            ops=tuple(self.ops),
            send=tuple(send),
            needs_hash_compare=tuple(compare),
            final_ops=tuple(final),
            bytes_total=sum(zone_bytes(sizes[path], zones, self.zs) for path, zones in send),
            hash_bytes=sum(p[n].size for n in compare),
            fullsync=self.fullsync,
        )

    def _renames(self, extra: set[str], missing: list[str]) -> dict[str, str]:
        """dst -> src: an extra secondary file that looks like a missing primary file."""
        sources: dict[tuple[int, int], list[str]] = defaultdict(list)
        for n in sorted(extra, reverse=True):
            e = self.s[n]
            if e.kind == FILE and e.nlink == 1 and e.size > 0:
                sources[(e.size, e.mtime_ns)].append(n)
        out: dict[str, str] = {}
        for n in missing:
            e = self.p[n]
            if e.kind == FILE and self.canon.get(n, n) == n and sources.get((e.size, e.mtime_ns)):
                src = sources[(e.size, e.mtime_ns)].pop()  # smallest name first
                out[n] = src
                self.ops.append(ops.Rename(src, n))
                self.touched_dirs.update((_parent(src), _parent(n)))
        return out

    def _detached(self, kept: set[str]) -> set[str]:
        """Kept file names whose secondary hard links differ from the primary's.

        Within one secondary inode, the names of the primary link group with the
        smallest canonical name keep it; the others are unlinked and made anew
        (a write through one of them would otherwise change the others too).
        Non-canonical primary names not already linked to their canonical are relinked.
        """
        out: set[str] = set()
        for names in _link_groups(self.s, kept).values():
            by_canon: dict[str, list[str]] = defaultdict(list)
            for n in names:
                by_canon[self.canon.get(n, n)].append(n)
            for c in sorted(by_canon)[1:]:
                out.update(by_canon[c])
        for n, c in self.canon.items():
            if n == c or n not in kept:
                continue
            sn, sc = self.s[n], self.s.get(c)
            if c not in kept or c in out or sc is None or (sn.dev, sn.ino) != (sc.dev, sc.ino):
                out.add(n)
        return out

    def _create(self, created: set[str]) -> None:
        links = []
        for n in sorted(created):
            e = self.p[n]
            if e.kind == DIR:
                continue  # made top-down earlier
            self.touched_dirs.add(_parent(n))
            if e.kind == FILE:
                if self.canon.get(n, n) != n:
                    links.append(ops.Link(self.canon[n], n))
                else:
                    self.ops.append(ops.Create(n, e.mode))
            elif e.kind == SYMLINK:
                self.ops.append(ops.Symlink(e.target or "", n))
            else:
                self.ops.append(ops.Mknod(n, e.mode, e.rdev))
        self.ops.extend(links)

    def _metadata(self, before: dict[str, Entry | None]) -> None:
        for n in sorted(before):
            e, old = self.p[n], before[n]
            if self.canon.get(n, n) != n:
                continue  # same inode as the canonical name
            if e.kind == FILE and (0 if old is None else old.size) != e.size:
                self.ops.append(ops.Truncate(n, e.size))  # before data: sparse tails stay holes
            chown = old is None or (old.uid, old.gid) != (e.uid, e.gid)
            if chown:
                self.ops.append(ops.Chown(n, e.uid, e.gid))
            # chown clears the set-id bits: the mode is set again after it.
            mode_differs = old is None or stat.S_IMODE(old.mode) != stat.S_IMODE(e.mode)
            if e.kind != SYMLINK and (chown or mode_differs):
                self.ops.append(ops.Chmod(n, stat.S_IMODE(e.mode)))

    def _renamed(self, n: str) -> bool:
        """A name of this file, or a directory above one, was renamed or linked while tracking."""
        if not self.renamed_names:
            return False
        for name in self.group.get(n, [n]):
            while True:
                if name in self.renamed_names:
                    return True
                if not name:
                    break
                name = _parent(name)
        return False

    def _record(self, n: str) -> FileChanges:
        """The change record of a file, over all its primary hard-link names."""
        out = FileChanges()
        assert self.dirty is not None
        for name in self.group.get(n, [n]):
            fc = self.dirty.get(name)
            if fc is not None:
                out.zones |= fc.zones
                if fc.tail is not None:
                    out.tail = fc.tail if out.tail is None else min(out.tail, fc.tail)
                out.flags |= fc.flags
        return out

    def _data(
        self, before: dict[str, Entry | None], renamed: dict[str, str]
    ) -> tuple[list[tuple[str, tuple[int, ...]]], list[str]]:
        send: list[tuple[str, tuple[int, ...]]] = []
        compare: list[str] = []
        for n in sorted(before):
            e, old = self.p[n], before[n]
            if e.kind != FILE or self.canon.get(n, n) != n:
                continue
            count = zone_count(e.size, self.zs)
            if old is None:  # a new, empty file
                zones = list(range(count))
            elif n in renamed or self.fullsync or self.dirty is None:
                changed = (old.size, old.mtime_ns) != (e.size, e.mtime_ns)
                if n in renamed or self.fullsync or changed:
                    compare.append(n)
                continue
            else:
                fc = self._record(n)
                if self._renamed(n):  # the name may hold another file now: compare
                    compare.append(n)
                    continue
                zones = fc.dirty_zones(e.size, self.zs)
                if old.size < e.size:  # the secondary's extension reads zeros: send it
                    zones = sorted(set(zones) | set(range(old.size // self.zs, count)))
                changed = (old.size, old.mtime_ns) != (e.size, e.mtime_ns)
                # Changed outside the record (agent stopped), or maybe through a pre-existing
                # hard link whose written name was then removed: verify by hashes.
                unexplained = not fc.has_data() and not fc.flags
                via_lost_link = self.dirty.orphaned and old.nlink > 1
                if changed and (unexplained or via_lost_link):
                    compare.append(n)
                    continue
            if zones:
                send.append((n, tuple(zones)))
        return send, compare

    def _times(
        self,
        before: dict[str, Entry | None],
        send: list[tuple[str, tuple[int, ...]]],
        compare: list[str],
    ) -> list[ops.Op]:
        written = {n for n, _ in send} | set(compare)
        out: list[ops.Op] = []
        for n in sorted(before):
            e, old = self.p[n], before[n]
            if self.canon.get(n, n) != n:
                continue
            if (
                old is None
                or old.mtime_ns != e.mtime_ns
                or n in written
                or (e.kind == DIR and n in self.touched_dirs)
                or (e.kind == FILE and old.size != e.size)
            ):
                out.append(ops.Utimens(n, e.atime_ns, e.mtime_ns))
        return out


def plan_resync(
    primary: Listing,
    secondary: Listing,
    dirty: ChangeSet | None,
    zone_size: int = DEFAULT_ZONE_SIZE,
    *,
    fullsync: bool = False,
) -> ResyncPlan:
    """Plan the secondary's catch-up. `dirty` only if the record is trustworthy (the
    returning node's latest generation equals the bitmap's base), merged with the
    activity log of the returning node; None means compare hashes of changed files.
    `fullsync` hash-compares every file whatever its size and mtime.
    """
    if dirty is not None and dirty.zone_size != zone_size:
        raise ValueError("the change record uses another zone size")
    return _Planner(primary, secondary, dirty, zone_size, fullsync).run()
