"""The primary's side of a resync (docs/replication.md, "Resync session").

``ResyncSession.run()`` drives one resync over a connected StreamSender, in the thread
that calls it:

1. REQUEST begin: the secondary's latest generation, what its copy may hold beyond it
   (activity log and bitmap) and its kernel boot id (``on_begin`` settles the zones in
   doubt there, peer_doubt.py). The bitmap is the record to trust only if its base
   generation is that generation (and no fullsync); dirty = bitmap ∪ the peer's own
   changes; otherwise hashes decide.
2. The replicator goes RESYNC (every op from now on is recorded); both trees are listed
   (ours scanned while the peer's pages arrive) and ``plan_resync`` computed.
3. ``ResyncTracker.install``: the plan's namespace ops are queued on the stream, its zones
   become pending, and what changed since the scan is folded in.
4. Data: each pending zone is read under its zone lock and queued as a Write (paced by
   the bandwidth cap, at most ``window_bytes`` unacknowledged); files without a
   trustworthy record are compared 32 zones at a time (REQUEST hashes, ours hashed
   meanwhile) and only differing zones -- or zones written meanwhile -- are sent.
5. Final pass, writers paused (FUSE locks, then ``quiesced``): both trees listed again,
   planned from the record of everything that happened during the resync, fixed, then
   REQUEST done (the replicator is *bound* from just before: a break holds writes); the
   bitmap restarts from the current generation and the replicator goes REPLICATE before
   the writers resume. Unpaced, and as long as what was created,
   renamed or removed during the resync needs (files made meanwhile are copied here).

Any failure raises (ResyncError, or the link's errors); the caller drops the stream and
the bitmap still holds everything (it is cleared only after done).
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from node_agent.replication import ops
from node_agent.replication.local import scan as sc
from node_agent.replication.ops import Op
from node_agent.replication.resync import requests as rq
from node_agent.replication.resync.plan import plan_resync, zone_bytes
from node_agent.replication.resync.progress import ResyncProgress
from node_agent.replication.resync.tracker import ResyncTracker
from node_agent.replication.stream.sender import SenderState, StreamSender
from node_agent.replication.tracking.bitmap import ZoneBitmap
from node_agent.replication.tracking.zones import ChangeSet, zone_count


class ResyncingReplicator(Protocol):
    """What a session needs of the primary's replicator (roles/primary.py)."""

    zone_size: int
    bitmap: ZoneBitmap

    def start_resync(self, sender: StreamSender) -> ResyncTracker: ...
    def quiesced(self) -> AbstractContextManager[None]: ...
    def bind(self) -> None: ...
    def finish_resync(self, sender: StreamSender, base_generation: str) -> bool: ...


HASH_BATCH = 32  # zones per hashes request: bounds how long the peer's apply thread hashes


class ResyncError(RuntimeError):
    """The resync cannot go on (stream lost, refused request, cancelled)."""


class Pacer:
    """Bandwidth cap as a token bucket (pure: time is passed in)."""

    def __init__(self, rate: float, now: float, burst: int = 1 << 20) -> None:
        self.rate, self.burst = float(rate), burst
        self._tokens, self._last = float(burst), now

    def delay(self, nbytes: int, now: float) -> float:
        """Seconds to wait after sending ``nbytes`` so the average stays under the rate."""
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= nbytes
        return max(0.0, -self._tokens / self.rate)


def ask(sender: StreamSender, req: rq.Request, timeout_s: float) -> rq.Reply:
    """One resync request over ``sender``, its reply decoded."""
    return rq.decode_reply(req, sender.request(rq.encode_request(req), timeout_s))


class ResyncSession:
    def __init__(
        self, primary: ResyncingReplicator, sender: StreamSender, copy_root: Path, *,
        node_id: str, history: Callable[[], tuple[str, ...]],
        pause: Callable[[], AbstractContextManager[None]], fullsync: bool = False,
        bandwidth: float | None = None, request_timeout_s: float = 120.0,
        window_bytes: int = 32 << 20, clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        on_begin: Callable[[rq.BeginReply], None] | None = None,
    ) -> None:  # fmt: skip
        self.primary, self.sender, self.root = primary, sender, Path(copy_root)
        self.zs = primary.zone_size
        self._node, self._history, self._pause = node_id, history, pause
        self.fullsync, self.bandwidth = fullsync, bandwidth
        self._timeout, self.window_bytes = request_timeout_s, window_bytes
        self._cancelled = threading.Event()
        self._clock, self._sleep = clock, sleep or self._cancelled.wait  # cancel cuts pauses
        self._pacer: Pacer | None = None
        self._on_begin = on_begin
        self._window: deque[tuple[Callable[[], None], int]] = deque()
        self._outstanding = 0
        self._fresh: set[str] = set()  # files the plan creates: their holes need no bytes
        self.algo = ""
        self.record = ""  # "bitmap" or "hashes": what decided which zones to send
        self.phase = "begin"
        self.progress = ResyncProgress(None, clock())  # the total: once planned
        self.bytes_done = 0  # zone bytes handled (sent, or holes of new files)
        self.bytes_sent = 0  # Write payload actually queued on the stream
        self.zones_sent = 0
        self.hash_bytes = 0
        self.done_acked = False  # the secondary took resync-done: it is up to date now

    def cancel(self) -> None:
        self._cancelled.set()

    def progress_tuple(self) -> tuple[bool, int, int, float, float | None]:
        p = self.progress
        active = self.phase not in ("done", "failed")
        return (active, p.bytes_done, p.bytes_total, p.rate, p.eta())

    # -- the protocol ----------------------------------------------------------------------
    def run(self) -> None:
        p, hist = self.primary, self._history()
        begin = self._ask(
            rq.Begin(self._node, hist[-1] if hist else "", sc.available_hashes(), self.zs)
        )
        assert isinstance(begin, rq.BeginReply)
        if self._on_begin is not None:
            self._on_begin(begin)  # before the record is read: it may add to the bitmap
        self.algo = sc.negotiate_hash(begin.hashes)
        tracker = p.start_resync(self.sender)
        dirty = self._trusted_record(begin)
        self.record = "bitmap" if dirty is not None else "hashes"
        self.phase = "listing"
        mine, theirs = self._listings()
        plan = plan_resync(mine, theirs, dirty, self.zs, fullsync=self.fullsync)
        self._fresh = {path for path, _ in plan.send if path not in theirs}
        self.progress = ResyncProgress(plan.bytes_total, self._clock())
        if self.bandwidth:
            self._pacer = Pacer(self.bandwidth, self._clock())
        compare = {n: mine[n].size for n in plan.needs_hash_compare}
        added = tracker.install(plan.send, compare, self._size,
                                lambda: self._queue_all(plan.ops))  # fmt: skip
        self.progress.add_total(added)
        self.phase = "data"
        self._drain(tracker)
        self.phase = "compare"
        for path in plan.needs_hash_compare:
            self._compare(path, tracker)
        self._drain(tracker)
        self._queue_all(plan.final_ops)
        self._settle(0)
        self.phase, self._pacer = "final", None
        with self._pause(), p.quiesced():
            self._final(tracker.swap())
            hist = self._history()
            p.bind()  # once Done is out, the peer may be current: a break now holds writes
            self._ask(rq.Done(hist[-1], hist))
            self.done_acked = True
            if not p.finish_resync(self.sender, hist[-1]):
                raise ResyncError("the replicator left RESYNC during the final pass")
        self.progress.finish()
        self.phase = "done"

    def _trusted_record(self, begin: rq.BeginReply) -> ChangeSet | None:
        if self.fullsync or begin.activity is None:
            return None
        try:
            base, dirty = self.primary.bitmap.base_generation, self.primary.bitmap.changes()
            if base is None or base != begin.generation:
                return None
            return dirty.merge(ChangeSet.from_dict(begin.activity))
        except (OSError, ValueError, KeyError, TypeError):  # unreadable: compare hashes
            return None

    def _final(self, record: ChangeSet) -> None:
        mine, theirs = self._listings()
        plan = plan_resync(mine, theirs, record, self.zs)
        self._fresh = {path for path, _ in plan.send if path not in theirs}
        self.progress.add_total(plan.bytes_total)
        self._queue_all(plan.ops)
        for path, zones in plan.send:
            for z in zones:
                self._send_zone(path, z, None)
        for path in plan.needs_hash_compare:
            self._compare(path, None)
        self._queue_all(plan.final_ops)
        self._settle(0)

    def _ask(self, req: rq.Request) -> rq.Reply:
        self._check()
        return ask(self.sender, req, self._timeout)

    def _listings(self) -> tuple[sc.Listing, sc.Listing]:
        with ThreadPoolExecutor(1) as pool:
            scan = pool.submit(sc.scan_tree, self.root)
            theirs: sc.Listing = {}
            start: int | None = 0
            while start is not None:
                page = self._ask(rq.ListPage(start))
                theirs.update((e.path, e) for e in page.entries)  # type: ignore[union-attr]
                nxt = page.next  # type: ignore[union-attr]
                if nxt is not None and nxt <= start:
                    raise ResyncError("the secondary's listing does not advance")
                start = nxt
            mine = scan.result()
        theirs[""] = mine[""]  # the copy root itself is not replicated
        return mine, theirs

    # -- data --------------------------------------------------------------------------------
    def _check(self) -> None:
        if self._cancelled.is_set():
            raise ResyncError("resync cancelled")
        if self.sender.state is not SenderState.RUNNING:
            raise ResyncError(f"replication stream lost: {self.sender.stats().failure}")

    def _queue(self, op: Op, nbytes: int) -> None:
        self._check()
        self._window.append((self.sender.enqueue(op, inline=False), nbytes))  # waited later
        self._outstanding += nbytes

    def _queue_all(self, todo: Iterable[Op]) -> None:
        for op in todo:
            self._queue(op, 0)
            if len(self._window) > 4096:
                self._settle(self.window_bytes)

    def _settle(self, limit: int) -> None:
        """Wait for the oldest queued ops until at most ``limit`` bytes (0: all) are out."""
        while self._window and (self._outstanding > limit or not limit or len(self._window) > 4096):
            wait, n = self._window.popleft()
            wait()
            self._outstanding -= n
        self._check()

    def _size(self, path: str) -> int | None:
        try:
            st = os.lstat(self.root / path)
        except OSError:
            return None
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def _read(self, path: str, zone: int) -> bytes | None:
        try:
            fd = os.open(self.root / path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None  # gone: a namespace change, recorded for the final pass
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return os.pread(fd, self.zs, zone * self.zs)
        finally:
            os.close(fd)

    def _send_zone(self, path: str, zone: int, tracker: ResyncTracker | None) -> None:
        held = tracker.zones(path, (zone,)) if tracker else contextlib.nullcontext()
        with held:  # an app write to this zone waits: it is sent after our copy, or marked
            if tracker is not None and not tracker.take(path, zone):
                return
            data = self._read(path, zone)
            if not data:
                return
            sent = 0
            if path not in self._fresh or data.count(0) != len(data):
                self._queue(ops.Write(path, zone * self.zs, data), len(data))
                sent = len(data)
        self.bytes_sent += sent
        self.bytes_done += len(data)
        self.zones_sent += 1
        self.progress.update(self._clock(), self.bytes_done)
        self._settle(self.window_bytes)
        if self._pacer is not None and sent:
            pause = self._pacer.delay(sent, self._clock())
            if pause > 0:
                self._sleep(pause)

    def _drain(self, tracker: ResyncTracker) -> None:
        while batch := tracker.snapshot():
            for path, zones in batch:
                for z in zones:
                    self._send_zone(path, z, tracker)

    def _compare(self, path: str, tracker: ResyncTracker | None) -> None:
        size = self._size(path)
        n = zone_count(size or 0, self.zs)
        with ThreadPoolExecutor(1) as pool:
            for first in range(0, n, HASH_BATCH):
                if tracker is not None and tracker.unsettled(path):
                    return tracker.drop(path)
                batch = tuple(range(first, min(n, first + HASH_BATCH)))
                local = pool.submit(sc.zone_hashes, self.root / path, self.zs, batch, self.algo)
                theirs = self._ask(rq.Hashes(path, batch, self.algo, self.zs)).hashes  # type: ignore[union-attr]
                try:
                    mine = local.result()
                except OSError:  # gone meanwhile: the final pass sees it
                    return tracker.drop(path) if tracker is not None else None
                self.hash_bytes += zone_bytes(size or 0, batch, self.zs)
                for z in batch:
                    differs = z in mine and mine[z] != theirs.get(z)
                    if tracker is None and not differs:
                        continue
                    if tracker is not None and not tracker.resolve(path, z, differs):
                        continue
                    self.progress.add_total(zone_bytes(size or 0, (z,), self.zs))
                    self._send_zone(path, z, tracker)
        if tracker is not None:
            tracker.drop(path, written_pending=True)
