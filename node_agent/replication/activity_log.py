"""The activity log of a PRIM: the zones that may have writes in flight (DESIGN §5).

If the primary crashes mid-write and comes back as the secondary, the zones in its
log are resynced too (the peer may or may not have applied those writes). Like
DRBD's activity-log extents, a zone stays *active* after its writes end and is
retired lazily -- only when more than `max_active` zones are active, the least
recently used idle ones are retired in a batch, inside the record that activates the
next zone. So a write into an active zone costs no I/O, and one durable record is
written per newly activated zone. ``load()`` after a crash may return more zones
than were in flight (superset), never fewer.

Keys are (path, zone); zone WHOLE_FILE stands for every zone of the file
(collapse/insert range shift all data after the offset).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

from node_agent.replication import ops
from node_agent.replication.journal import Journal
from node_agent.replication.zones import (
    DEFAULT_ZONE_SIZE,
    FALLOC_FL_COLLAPSE_RANGE,
    FALLOC_FL_INSERT_RANGE,
    FALLOC_FL_PUNCH_HOLE,
    FALLOC_FL_ZERO_RANGE,
    ChangeSet,
    check_zone_size,
    zones_of,
)

WHOLE_FILE = -1
Key = tuple[str, int]
Token = tuple[Key, ...]


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


class ActiveSet:
    """Pure core: reference-counted active keys in least-recently-used order."""

    def __init__(self, max_active: int, retire_batch: int) -> None:
        self.max_active = max(1, max_active)
        self.retire_batch = max(1, retire_batch)
        self.refs: OrderedDict[Key, int] = OrderedDict()

    @staticmethod
    def keys_of(op: ops.Op, zone_size: int) -> list[Key]:
        match op:
            case ops.Write(path=p, offset=off, data=data):
                return [(p, z) for z in zones_of(off, len(data), zone_size)]
            case ops.Truncate(path=p, size=size):
                return [(p, size // zone_size)]
            case ops.Fallocate(path=p, mode=mode, offset=off, length=length):
                if mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE):
                    return [(p, WHOLE_FILE)]
                if mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE):
                    return [(p, z) for z in zones_of(off, length, zone_size)]
        return []  # namespace and metadata: the listing comparison reconciles them

    def begin(self, keys: Iterable[Key]) -> tuple[list[Key], list[Key]]:
        """Take a reference on each key; returns (newly activated, retired) keys."""
        added: list[Key] = []
        for key in keys:
            if key in self.refs:
                self.refs[key] += 1
                self.refs.move_to_end(key)
            else:
                self.refs[key] = 1
                added.append(key)
        retired: list[Key] = []
        if added and len(self.refs) > self.max_active:
            goal = max(0, self.max_active - self.retire_batch)
            for key, count in list(self.refs.items()):
                if len(self.refs) <= goal:
                    break
                if count == 0:  # only idle zones: both sides have their writes
                    del self.refs[key]
                    retired.append(key)
        return added, retired

    def end(self, keys: Iterable[Key]) -> None:
        for key in keys:
            if self.refs.get(key, 0) > 0:
                self.refs[key] -= 1

    def renamed(self, src: str, dst: str) -> list[Key]:
        """Keys of dst matching the active keys under src: a zone stays tracked by name."""
        return [(dst + p[len(src) :], z) for p, z in self.refs if _under(p, src)]

    def restore(self, keys: Iterable[Key]) -> None:
        for key in keys:
            self.refs.setdefault(key, 0)


def _to_changeset(keys: Iterable[Key], zone_size: int) -> ChangeSet:
    out = ChangeSet(zone_size)
    for path, zone in keys:
        out.apply(["t", path, 0] if zone == WHOLE_FILE else ["z", path, [zone]])
    return out


class ActivityLog:
    def __init__(
        self,
        directory: Path,
        zone_size: int = DEFAULT_ZONE_SIZE,
        max_active: int = 1024,
        *,
        retire_batch: int | None = None,
        compact_every: int = 4096,
        name: str = "activity",
    ) -> None:
        self.zone_size = check_zone_size(zone_size)
        self._active = ActiveSet(max_active, retire_batch or max(1, max_active // 16))
        self._compact_every = max(1, compact_every)
        self._journal = Journal(Path(directory), name)
        self._lock = threading.Lock()
        self._loaded = False
        self._failed = False

    def load(self) -> ChangeSet:
        """Zones that may have had writes in flight when the node last stopped."""
        with self._lock:
            self._load_locked()
            return _to_changeset(self._active.refs, self.zone_size)

    def _load_locked(self) -> None:
        self._journal.close()
        snapshot, records = self._journal.open()
        keys: dict[Key, None] = {}
        if snapshot is not None:
            keys.update((tuple(k), None) for k in json.loads(snapshot))  # type: ignore[misc]
        for record in records:
            change = json.loads(record)
            keys.update((tuple(k), None) for k in change["a"])  # type: ignore[misc]
            for k in change["r"]:
                keys.pop(tuple(k), None)  # type: ignore[call-overload]
        self._active.refs.clear()
        self._active.restore(keys)  # idle until retired, or cleared after resync
        self._loaded, self._failed = True, False

    def active(self) -> ChangeSet:
        """The zones active right now (in flight or not yet retired)."""
        with self._lock:
            return _to_changeset(self._active.refs, self.zone_size)

    def begin(self, op: ops.Op) -> Token:
        """Before sending `op`: its zones are durably active when this returns."""
        with self._lock:
            if not self._loaded:
                self._load_locked()
            if self._failed:
                self._recover()
            keys = ActiveSet.keys_of(op, self.zone_size)
            if isinstance(op, ops.Rename):
                keys += self._active.renamed(op.src, op.dst)
            if not keys:
                return ()
            added, retired = self._active.begin(keys)
            token = tuple(keys)
            if not added:
                seq = self._journal.last_seq  # another thread's record may still be syncing
            else:
                try:
                    if self._journal.records + 1 >= self._compact_every:
                        self._compact()
                        return token
                    record = json.dumps({"a": added, "r": retired}).encode()
                    seq = self._journal.append([record])
                except OSError:
                    self._failed = True
                    self._fail_begin(token)
                    return token
        try:
            self._journal.wait_durable(seq)
        except OSError:
            with self._lock:
                self._failed = True
                self._fail_begin(token)
        return token

    def _fail_begin(self, token: Token) -> None:
        try:
            self._recover()
        except OSError:
            self._active.end(token)  # the caller gets the error and will not call end()
            raise

    def end(self, token: Token) -> None:
        """The write of `token` is on both sides: its zones may be retired later."""
        with self._lock:
            self._active.end(token)

    def clear(self) -> None:
        """Forget every idle zone (after a full resync); in-flight ones stay active."""
        with self._lock:
            for key in [k for k, n in self._active.refs.items() if n == 0]:
                del self._active.refs[key]
            self._loaded = True
            self._compact()
            self._failed = False

    def _compact(self) -> None:
        self._journal.rewrite(json.dumps(list(self._active.refs)).encode())

    def _recover(self) -> None:
        if self._failed:
            self._compact()
            self._failed = False

    @property
    def pending_records(self) -> int:
        return self._journal.records

    def close(self) -> None:
        with self._lock:
            self._journal.close()
            self._loaded = False
