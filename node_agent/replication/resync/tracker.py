"""What a running resync still has to send, and what the application changed meanwhile
(docs/replication.md, "Resync session"): the primary's replicator consults it, under a
zone's lock, for every op while it is in RESYNC mode (roles/primary.py), and the resync
session takes zones from it (session.py).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator

from node_agent.replication import ops
from node_agent.replication.ops import Op, op_paths
from node_agent.replication.tracking import zones as zn
from node_agent.replication.tracking.zones import Change, ChangeSet, zone_count

NS_FLAGS = Change.CREATED | Change.REMOVED | Change.RENAMED | Change.LINKED
META = int(Change.METADATA)
_NAMESPACE = (ops.Create, ops.Mknod, ops.Mkdir, ops.Unlink, ops.Rmdir, ops.Rename, ops.Link,
              ops.Symlink)  # fmt: skip
_SHIFT = zn.FALLOC_FL_COLLAPSE_RANGE | zn.FALLOC_FL_INSERT_RANGE
STRIPES = 64


class ResyncTracker:
    """What a running resync still has to send, and what changed meanwhile: ``pending``
    zones to copy; ``unresolved`` zones to hash-compare (written ones go to ``written``:
    sent whatever the hashes say); ``during``: every op since the resync began, in full if
    only marked, as a METADATA flag if sent (the final pass plans from it). Lock order:
    stripes (sorted), then ``lock``."""

    def __init__(self, zone_size: int) -> None:
        self.zone_size = zone_size
        self.lock = threading.Lock()
        self._stripes = [threading.Lock() for _ in range(STRIPES)]
        self.installed = False  # before install every path counts as not reconciled
        self.pending: dict[str, set[int]] = {}
        self.unresolved: dict[str, set[int]] = {}
        self.written: dict[str, set[int]] = {}
        self.during = ChangeSet(zone_size)

    @contextlib.contextmanager
    def zones(self, path: str, zones: Iterable[int]) -> Iterator[None]:
        locks = [self._stripes[i] for i in sorted({hash((path, z)) % STRIPES for z in zones})]
        for lk in locks:
            lk.acquire()
        try:
            yield
        finally:
            for lk in reversed(locks):
                lk.release()

    def _unsettled(self, path: str) -> bool:
        if not self.installed:
            return True
        while True:  # the path or a directory above it changed names during the resync
            fc = self.during.get(path)
            if fc is not None and fc.flags & NS_FLAGS:
                return True
            if not path:
                return False
            path = path.rpartition("/")[0]

    def unsettled(self, path: str) -> bool:
        with self.lock:
            return self._unsettled(path)

    def classify(self, op: Op, zones: list[int]) -> bool:
        """True: send ``op`` now; False: only mark it. The caller holds ``zones(...)``."""
        paths = op_paths(op)
        with self.lock:
            shift = isinstance(op, ops.Fallocate) and op.mode & _SHIFT
            if isinstance(op, _NAMESPACE) or shift or any(map(self._unsettled, paths)):
                self.during.record(op)
                if shift:  # data moved inside the file: the final pass hash-compares it
                    self.during.apply(["f", op.path, int(Change.RENAMED)])
                return False
            path = paths[0]
            pend, unres = self.pending.get(path, ()), self.unresolved.get(path, ())
            if unres:
                self.written.setdefault(path, set()).update(z for z in zones if z in unres)
            if not isinstance(op, ops.Fsync):
                for p in paths:
                    self.during.apply(["f", p, META])  # its times differ now: final pass
            return not (zones and all(z in pend or z in unres for z in zones))

    def install(
        self, send: Iterable[tuple[str, Iterable[int]]], compare: dict[str, int],
        size_of: Callable[[str], int | None], enqueue: Callable[[], None],
    ) -> int:  # fmt: skip
        """Adopt the plan, fold in what changed since the scan; returns the bytes added.
        ``enqueue`` (the plan's ops) runs under the lock: no app op overtakes them."""
        zs = self.zone_size
        with self.lock:
            enqueue()
            for path, zones in send:
                self.pending.setdefault(path, set()).update(zones)
            for path, size in compare.items():
                self.unresolved[path] = set(range(zone_count(size, zs)))
            self.installed, added = True, 0
            for path, fc in self.during:
                if self._unsettled(path):
                    continue  # kept in full: the final pass reconciles it
                size = size_of(path) if fc.has_data() else None
                for z in fc.dirty_zones(size, zs) if size is not None else ():
                    if z in self.unresolved.get(path, ()):
                        self.written.setdefault(path, set()).add(z)
                    elif z not in self.pending.setdefault(path, set()):
                        self.pending[path].add(z)
                        added += min(zs, size - z * zs)  # type: ignore[operator]
                # its zones are pending now; the final pass only fixes its times
                fc.zones, fc.tail, fc.flags = set(), None, fc.flags | Change.METADATA
            return added

    def take(self, path: str, zone: int) -> bool:
        """Under the zone's stripe: True if the resync must copy it now (no longer pending)."""
        with self.lock:
            pend = self.pending.get(path)
            if not pend or zone not in pend:
                return False
            pend.discard(zone)
            if not pend:
                del self.pending[path]
            return not self._unsettled(path)

    def resolve(self, path: str, zone: int, differs: bool) -> bool:
        """A hash comparison's verdict: True if the zone is now pending (to be sent)."""
        with self.lock:
            unres = self.unresolved.get(path)
            if unres is None or zone not in unres:
                return False
            unres.discard(zone)
            if differs or zone in self.written.get(path, ()):
                self.pending.setdefault(path, set()).add(zone)
                return True
            return False

    def drop(self, path: str, written_pending: bool = False) -> None:
        """Stop comparing ``path`` (renamed/removed: the final pass does it; or compared:
        ``written_pending`` zones still get sent)."""
        with self.lock:
            left = self.unresolved.pop(path, set())
            if written_pending and left & self.written.get(path, set()):
                self.pending.setdefault(path, set()).update(left & self.written[path])

    def snapshot(self) -> list[tuple[str, list[int]]]:
        with self.lock:
            return [(p, sorted(z)) for p, z in sorted(self.pending.items())]

    def swap(self) -> ChangeSet:
        """The record of everything since the resync began (for the final pass)."""
        with self.lock:
            out, self.during = self.during, ChangeSet(self.zone_size)
            return out
