"""The primary's replicator: one per module, in one of four modes (docs/replication.md).

``PrimaryReplicator`` implements Replicator *with* the optional ``submit(op) -> wait``, so
fusefs applies each change locally and hands it to ``submit`` under its own global lock
(one total order), then waits outside it. ``submit`` never blocks for a round trip:

- TRACK: mark the op's zones in the persistent bitmap (durable); the wait is a no-op;
- CONNECTING: new ops block until the stream is up, or degrade to TRACK at the deadline;
- REPLICATE: activity-log ``begin``, ``sender.enqueue``; the wait: ACK, activity-log ``end``;
- RESYNC: ``ResyncTracker.classify`` under the op's zone locks: *mark only* (the resync
  still sends that zone, or the path's namespace is not reconciled yet) or *send* (as
  REPLICATE; on the wire after the resync's copy of those zones).

Paths are relative to the module's copy root ("I/..." for directory I). A stream failure
marks, before any waiter is released, the unacknowledged ops and the zones active in the
activity log (a crashed secondary may lose unsynced writes there); then, in another
thread, the mode becomes TRACK and ``on_stream_failure(reason, old_mode, sender)`` is called.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from enum import StrEnum

from node_agent.replication import ops
from node_agent.replication import zones as zn
from node_agent.replication.activity_log import ActivityLog
from node_agent.replication.bitmap import ZoneBitmap
from node_agent.replication.ops import Op, op_paths
from node_agent.replication.sender import StreamSender
from node_agent.replication.zones import Change, ChangeSet, zone_count, zones_of

log = logging.getLogger(__name__)
Wait = Callable[[], None]
NS_FLAGS = Change.CREATED | Change.REMOVED | Change.RENAMED | Change.LINKED
META = int(Change.METADATA)
_NAMESPACE = (ops.Create, ops.Mknod, ops.Mkdir, ops.Unlink, ops.Rmdir, ops.Rename, ops.Link,
              ops.Symlink)  # fmt: skip
_SHIFT = zn.FALLOC_FL_COLLAPSE_RANGE | zn.FALLOC_FL_INSERT_RANGE
_HOLE = zn.FALLOC_FL_PUNCH_HOLE | zn.FALLOC_FL_ZERO_RANGE
STRIPES = 64


class Mode(StrEnum):
    TRACK = "track"
    CONNECTING = "connecting"
    RESYNC = "resync"
    REPLICATE = "replicate"


def _noop() -> None:
    return None


def prefixed(op: Op, top: str) -> Op:
    """``op`` with its paths moved under the copy root's directory ``top``."""

    def move(p: str) -> str:
        return f"{top}/{p}" if p else top

    if isinstance(op, ops.Rename | ops.Link):
        return dataclasses.replace(op, src=move(op.src), dst=move(op.dst))
    if isinstance(op, ops.Fsync) and not op.path:
        return op  # "" = syncfs: the same filesystem for every directory
    return dataclasses.replace(op, path=move(op.path))


def data_zones(op: Op, zone_size: int) -> list[int]:
    """Zones whose bytes ``op`` writes (what the resync could send instead)."""
    if isinstance(op, ops.Write):
        return list(zones_of(op.offset, len(op.data), zone_size))
    if isinstance(op, ops.Fallocate) and op.mode & _HOLE:
        return list(zones_of(op.offset, op.length, zone_size))
    return []


def changeset_ops(changes: ChangeSet) -> list[Op]:
    """Synthetic ops that mark the same zones in a bitmap (merging a record into it)."""
    zs, out = changes.zone_size, []
    for path, fc in changes:
        out.extend(ops.Write(path, z * zs, b"\0") for z in sorted(fc.zones))
        if fc.tail is not None:
            out.append(ops.Truncate(path, fc.tail * zs))
    return out


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


class _Directory:
    """The Replicator one Mount sees: its paths, moved under "I/"."""

    def __init__(self, primary: PrimaryReplicator, top: str) -> None:
        self._primary, self._top = primary, top

    def submit(self, op: Op) -> Wait:
        return self._primary.submit(prefixed(op, self._top))

    def replicate(self, op: Op) -> None:
        self.submit(op)()


class PrimaryReplicator:
    def __init__(
        self, bitmap: ZoneBitmap, activity: ActivityLog,
        on_stream_failure: Callable[[str, Mode, StreamSender | None], None],
    ) -> None:  # fmt: skip
        self.bitmap, self.activity = bitmap, activity
        self.zone_size = bitmap.zone_size
        self._on_stream_failure = on_stream_failure
        self._cond = threading.Condition()
        self._mode = Mode.TRACK
        self._sender: StreamSender | None = None
        self._tracker: ResyncTracker | None = None
        self._deadline = 0.0
        self._busy = 0  # submits between their mode check and their enqueue
        self._hold = False

    @property
    def mode(self) -> Mode:
        return self._mode

    def directory(self, index: int) -> _Directory:
        return _Directory(self, str(index))

    def replicate(self, op: Op) -> None:
        self.submit(op)()

    def submit(self, op: Op) -> Wait:
        timed_out = False
        with self._cond:
            while self._hold or self._mode is Mode.CONNECTING:
                left = self._deadline - time.monotonic() if not self._hold else None
                if left is not None and left <= 0:
                    self._drop_locked()
                    timed_out = True
                    break
                self._cond.wait(left)
            mode, sender, tracker = self._mode, self._sender, self._tracker
            self._busy += 1
        if timed_out:
            self._notify_failure("no replication stream within the connect timeout",
                                 Mode.CONNECTING, None)  # fmt: skip
        try:
            if mode is Mode.TRACK:
                self.bitmap.mark(op)
                return _noop
            assert sender is not None
            if mode is Mode.REPLICATE:
                return self._send(sender, op)
            assert tracker is not None
            zones = data_zones(op, self.zone_size)
            with tracker.zones(op_paths(op)[0], zones):
                if tracker.classify(op, zones):
                    return self._send(sender, op)
            self.bitmap.mark(op)
            return _noop
        finally:
            with self._cond:
                self._busy -= 1
                if not self._busy:
                    self._cond.notify_all()

    def _send(self, sender: StreamSender, op: Op) -> Wait:
        try:
            token = self.activity.begin(op)
        except OSError as e:  # no crash protection for this op: track it as well
            log.error("activity log failed (%s): tracking the op in the bitmap", e)
            self.bitmap.mark(op)
            token = ()
        wait = sender.enqueue(op)

        def done() -> None:
            try:
                wait()
            finally:
                self.activity.end(token)

        return done

    def make_sender(self, build: Callable[..., StreamSender]) -> StreamSender:
        """``build(on_failure=, fallback=)`` -> a StreamSender wired to this replicator."""
        box: list[StreamSender] = []

        def on_failure(reason: str, unacked: list[Op]) -> None:
            # Runs before any waiter is released: everything the peer may lack is tracked.
            self.bitmap.mark_many([*unacked, *changeset_ops(self.activity.active())])
            threading.Thread(target=self._failed, args=(box, reason), daemon=True).start()

        box.append(build(on_failure=on_failure, fallback=self.bitmap.mark))
        return box[0]

    def _failed(self, box: list[StreamSender], reason: str) -> None:
        with self._cond:
            if self._sender is None or self._sender is not box[0]:
                return
            old, _ = self._drop_locked()
        self._notify_failure(reason, old, box[0])

    def _notify_failure(self, reason: str, old: Mode, sender: StreamSender | None) -> None:
        try:
            self._on_stream_failure(reason, old, sender)
        except Exception:
            log.exception("on_stream_failure raised")

    def _drop_locked(self) -> tuple[Mode, StreamSender | None]:
        old, sender, self._sender, self._tracker = self._mode, self._sender, None, None
        self._mode = Mode.TRACK
        self._cond.notify_all()
        return old, sender

    def track(self) -> tuple[Mode, StreamSender | None]:
        """TRACK now; (the mode it left, the sender it used: close it, its failures no longer
        matter)."""
        with self._cond:
            return self._drop_locked()

    def connecting(self, timeout_s: float) -> None:
        """New ops block until ``replicate_via`` (or TRACK after ``timeout_s``)."""
        with self._cond:
            self._mode, self._deadline = Mode.CONNECTING, time.monotonic() + timeout_s

    def replicate_via(self, sender: StreamSender, base_generation: str) -> bool:
        """CONNECTING -> REPLICATE (the record restarts from ``base_generation``) if nothing
        was tracked meanwhile; False otherwise."""
        with self._cond:
            if self._mode is not Mode.CONNECTING or not self.bitmap.changes().is_empty():
                return False
            self.bitmap.clear(base_generation)
            self._mode, self._sender = Mode.REPLICATE, sender
            self._cond.notify_all()
            return True

    def start_resync(self, sender: StreamSender) -> ResyncTracker:
        with self._cond:
            self._tracker = ResyncTracker(self.zone_size)
            self._mode, self._sender = Mode.RESYNC, sender
            self._cond.notify_all()
            return self._tracker

    @contextlib.contextmanager
    def quiesced(self) -> Iterator[None]:
        """No submit runs inside (call it *after* pausing the FUSE writers, never before)."""
        with self._cond:
            self._hold = True
            while self._busy:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._hold = False
                self._cond.notify_all()

    def finish_resync(self, sender: StreamSender, base_generation: str) -> bool:
        """Inside ``quiesced``, after resync-done: restart the record, go REPLICATE."""
        with self._cond:
            if self._mode is not Mode.RESYNC or self._sender is not sender:
                return False
        self.bitmap.clear(base_generation)
        self.activity.clear()
        with self._cond:
            self._mode, self._tracker = Mode.REPLICATE, None
            self._cond.notify_all()
        return True
