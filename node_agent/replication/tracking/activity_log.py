"""The activity log of a PRIM: the zones that may have writes in flight (DESIGN §5).

If the primary crashes mid-write and comes back as the secondary, the zones in its
log are resynced too (the peer may or may not have applied those writes). Like
DRBD's activity log it is bounded and trimmed as acknowledgements arrive:

- A zone is *activated* by the first write into it: one durable record (append +
  fdatasync, group-committed with other threads' records) before the write is sent.
  A write into an active zone costs no I/O.
- When the last write in flight in a zone is acknowledged, the zone is *idle*. It
  lingers ``linger_s`` (default 2 s: a hot zone is not re-activated, and re-synced,
  over and over), then is *retired* by a timer. Retirements are batched into one
  record that is appended but not synced: losing it can only make the log a superset.
- At most ``max_active`` zones (1024: 1 GiB of 1 MiB zones) are active; beyond that the
  longest-idle zones are retired at once, in the record that activates the next one.

Apart from the log, the last ``max_active`` retired zones are remembered in memory
(``recent``): acknowledged by the peer, not necessarily synced there; a broken stream
records them as in doubt (peer_doubt.py), as the log itself once did.

So after a crash the log holds the zones written in the last ``linger_s`` before it
(bounded by ``max_active``, or the zones in flight if more): a primary killed after its
writes were acknowledged and a quiet ``linger_s`` resyncs only what changed since.
``load()`` may return more zones than were in flight (superset), never fewer. Journal
writes: one synced record per activation, one unsynced record per retirement batch (at
most one per ``linger_s`` while idle zones expire), a snapshot every ``compact_every``.

Keys are (path, zone); zone WHOLE_FILE stands for every zone of the file
(collapse/insert range shift all data after the offset).
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

from node_agent.replication import ops
from node_agent.replication.tracking.journal import Journal
from node_agent.replication.tracking.zones import (
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
    """Pure core: reference-counted active keys in least-recently-used order, and since
    when each idle one (no write in flight) has been idle. Time is passed in."""

    def __init__(self, max_active: int, retire_batch: int, linger_s: float = 2.0) -> None:
        self.max_active = max(1, max_active)
        self.retire_batch = max(1, retire_batch)
        self.linger_s = linger_s
        self.refs: OrderedDict[Key, int] = OrderedDict()
        # Idle keys, longest idle first. Keys restored after a crash are not in it: they
        # stay until clear() (a resync covered them), whatever the time.
        self.idle: OrderedDict[Key, float] = OrderedDict()
        # Retired keys, most recent last, at most max_active: in memory only. The peer
        # acknowledged their writes but may not have synced them yet (peer_doubt.py).
        self.recent: OrderedDict[Key, None] = OrderedDict()

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
                self.idle.pop(key, None)
            else:
                self.refs[key] = 1
                added.append(key)
        retired: list[Key] = []
        if added and len(self.refs) > self.max_active:
            goal = max(0, self.max_active - self.retire_batch)
            while len(self.refs) > goal and self.idle:  # only idle zones: both sides have them
                key, _since = self.idle.popitem(last=False)
                del self.refs[key]
                retired.append(key)
            self._remember(retired)
        return added, retired

    def _remember(self, retired: list[Key]) -> None:
        for key in retired:
            self.recent[key] = None
            self.recent.move_to_end(key)
        while len(self.recent) > self.max_active:
            self.recent.popitem(last=False)

    def end(self, keys: Iterable[Key], now: float) -> None:
        for key in keys:
            count = self.refs.get(key, 0)
            if count > 0:
                self.refs[key] = count - 1
                if count == 1:
                    self.idle[key] = now
                    self.idle.move_to_end(key)

    def expired(self, now: float) -> list[Key]:
        """Retire (and return) the keys idle for linger_s or more."""
        out: list[Key] = []
        while self.idle:
            key, since = next(iter(self.idle.items()))
            if now - since < self.linger_s:
                break
            del self.idle[key], self.refs[key]
            out.append(key)
        self._remember(out)
        return out

    def next_expiry(self) -> float | None:
        """When the longest-idle key expires (None: nothing idle)."""
        return next(iter(self.idle.values())) + self.linger_s if self.idle else None

    def renamed(self, src: str, dst: str) -> list[Key]:
        """Keys of dst matching the active keys under src: a zone stays tracked by name."""
        return [(dst + p[len(src) :], z) for p, z in self.refs if _under(p, src)]

    def restore(self, keys: Iterable[Key]) -> None:
        for key in keys:
            self.refs.setdefault(key, 0)

    def clear_idle(self) -> None:
        """Forget every key with no write in flight (restored ones included)."""
        for key in [k for k, n in self.refs.items() if n == 0]:
            del self.refs[key]
        self.idle.clear()
        self.recent.clear()


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
        linger_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.zone_size = check_zone_size(zone_size)
        self._active = ActiveSet(max_active, retire_batch or max(1, max_active // 16), linger_s)
        self._compact_every = max(1, compact_every)
        self._journal = Journal(Path(directory), name)
        self._clock = clock
        self._lock = threading.Lock()
        self._loaded = False
        self._failed = False
        self._timer: threading.Timer | None = None

    def load(self) -> ChangeSet:
        """Zones that may have had writes in flight when the node last stopped."""
        with self._lock:
            self._load_locked()
            return _to_changeset(self._active.refs, self.zone_size)

    def _load_locked(self) -> None:
        self._cancel_timer()
        self._journal.close()
        snapshot, records = self._journal.open()
        self._active.refs.clear()
        self._active.idle.clear()
        self._active.recent.clear()
        self._active.restore(replay(snapshot, records))  # kept until clear()
        self._loaded, self._failed = True, False

    def active(self) -> ChangeSet:
        """The zones active right now (in flight or not yet retired)."""
        with self._lock:
            return _to_changeset(self._active.refs, self.zone_size)

    def recent(self) -> ChangeSet:
        """The active zones and the last ``max_active`` retired ones: what the peer
        acknowledged lately and may not have synced yet (peer_doubt.py)."""
        with self._lock:
            return _to_changeset([*self._active.refs, *self._active.recent], self.zone_size)

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
            self._active.end(token, self._clock())  # the caller gets the error, no end()
            raise

    def end(self, token: Token) -> None:
        """The write of `token` is on both sides: its zones retire after linger_s."""
        if not token:
            return
        with self._lock:
            self._active.end(token, self._clock())
            self._schedule()

    def trim(self) -> int:
        """Retire the zones idle for linger_s (the timer calls it); returns how many."""
        with self._lock:
            self._cancel_timer()
            retired = self._active.expired(self._clock())
            if retired and self._loaded and not self._failed:
                try:
                    if self._journal.records + 1 >= self._compact_every:
                        self._compact()
                    else:  # not synced: a lost retirement only leaves a superset
                        self._journal.append([json.dumps({"a": [], "r": retired}).encode()])
                except (OSError, RuntimeError):  # failed or closed: begin() recovers
                    self._failed = True
            self._schedule()
            return len(retired)

    def _schedule(self) -> None:
        """A timer for the next expiry, if none is set (under the lock)."""
        due = self._active.next_expiry()
        if due is None or self._timer is not None or not self._loaded:
            return
        self._timer = threading.Timer(max(0.0, due - self._clock()) + 0.01, self.trim)
        self._timer.daemon = True
        self._timer.start()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def clear(self) -> None:
        """Forget every idle zone (after a full resync); in-flight ones stay active."""
        with self._lock:
            self._cancel_timer()
            self._active.clear_idle()
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
            self._cancel_timer()
            self._journal.close()
            self._loaded = False


def stored_keys(directory: Path, name: str = "activity") -> list[Key]:
    """What a crash would leave of the log in ``directory``, read without touching it
    (tests and diagnostics, while its agent runs)."""
    return replay(*Journal(Path(directory), name).peek())


def replay(snapshot: bytes | None, records: Iterable[bytes]) -> list[Key]:
    """The keys a stored log holds: its snapshot, then each record's adds and retires."""
    keys: dict[Key, None] = {}
    if snapshot is not None:
        keys.update((tuple(k), None) for k in json.loads(snapshot))  # type: ignore[misc]
    for record in records:
        change = json.loads(record)
        keys.update((tuple(k), None) for k in change["a"])  # type: ignore[misc]
        for k in change["r"]:
            keys.pop(tuple(k), None)  # type: ignore[call-overload]
    return list(keys)
