"""The primary's replicator: one per module, in one of six modes (docs/replication.md).

``PrimaryReplicator`` implements ``Replicator`` (replicator.py), one view of it per mount
(``directory(I)``): the FUSE layer applies each change locally and hands it to ``submit``
under the change's claim (fuse/handover.py), then waits outside it. ``submit`` never
blocks for a round trip:

- TRACK: mark the op's zones in the persistent bitmap (durable); the wait is a no-op;
- CONNECTING: new ops block until the stream is up, or the connect deadline breaks it;
- REPLICATE: activity-log ``begin``, ``sender.enqueue``; the wait: ACK, activity-log ``end``;
- RESYNC: ``ResyncTracker.classify`` under the op's zone locks: *mark only* (the resync
  still sends that zone, or the path's namespace is not reconciled yet) or *send* (as
  REPLICATE; on the wire after the resync's copy of those zones);
- HELD: the stream broke while the peer may hold a current copy ("bound": CONNECTING,
  REPLICATE, or a resync past its resync-done): ops are marked and their waits block --
  as do the waits of the ops the stream never acknowledged -- until ``resolve_hold``:
  the write gate (core/write_gate.py) opened (-> TRACK: they return) or fenced;
- FENCED: this node gave up the role: every wait and every later submit fails (EIO).

Paths are relative to the module's copy root ("I/..." for directory I). A stream failure
marks, before any waiter is released, the unacknowledged ops in the bitmap; the zones the
activity log held go to the peer-doubt record (peer_doubt.py: the peer applied them, but a
crash of its machine could still lose them). Then the mode changes (HELD if bound, else
TRACK) and ``on_stream_failure(StreamBreak)`` is called in a thread of its own.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum

from node_agent.replication.ops import Op, op_paths, prefixed
from node_agent.replication.replicator import Prepared, Wait
from node_agent.replication.resync.tracker import ResyncTracker
from node_agent.replication.stream.sender import NotAcknowledged, StreamSender
from node_agent.replication.tracking.activity_log import ActivityLog
from node_agent.replication.tracking.bitmap import ZoneBitmap
from node_agent.replication.tracking.peer_doubt import PeerDoubt
from node_agent.replication.tracking.zones import changeset_ops, data_zones

log = logging.getLogger(__name__)


class Mode(StrEnum):
    TRACK = "track"
    CONNECTING = "connecting"
    RESYNC = "resync"
    REPLICATE = "replicate"
    HELD = "held"
    FENCED = "fenced"


@dataclass(frozen=True)
class StreamBreak:
    """What ``on_stream_failure`` is told: ``hold`` is the token of the break when writes
    are now held (empty: TRACK, nothing held); ``requested``: the secondary asked for it."""

    reason: str
    old: Mode
    sender: StreamSender | None
    hold: str = ""
    requested: bool = False


def _noop() -> None:
    return None


def fenced_error(reason: str) -> OSError:
    return OSError(errno.EIO, f"writes fenced: {reason}")


class _Directory:
    """The Replicator one Mount sees: its paths, moved under "I/"."""

    def __init__(self, primary: PrimaryReplicator, top: str) -> None:
        self._primary, self._top = primary, top

    def prepare(self, op: Op) -> Prepared:
        return self._primary.prepare(prefixed(op, self._top))

    def submit(self, op: Op, prepared: Prepared | None = None, background: bool = False) -> Wait:
        return self._primary.submit(prefixed(op, self._top), prepared, background)

    def abandon(self, prepared: Prepared) -> None:
        self._primary.abandon(prepared)

    @property
    def fenced(self) -> bool:
        return self._primary.mode is Mode.FENCED


class PrimaryReplicator:
    def __init__(
        self, bitmap: ZoneBitmap, activity: ActivityLog,
        on_stream_failure: Callable[[StreamBreak], None], doubt: PeerDoubt | None = None,
    ) -> None:  # fmt: skip
        self.bitmap, self.activity, self.doubt = bitmap, activity, doubt
        self.zone_size = bitmap.zone_size
        self.peer_kernel: str | None = None  # the peer's kernel boot id, from resync-begin
        self._on_stream_failure = on_stream_failure
        self._cond = threading.Condition()
        self._mode = Mode.TRACK
        self._sender: StreamSender | None = None
        self._tracker: ResyncTracker | None = None
        self._deadline = 0.0
        self._busy = 0  # submits between their mode check and their enqueue
        self._quiesce = False
        self._bound = False  # the peer may hold a current copy: a break holds writes
        self._hold, self._hold_reason = "", ""
        self.held_writes = 0  # writers waiting in _settle for the hold's verdict

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def hold_token(self) -> str:
        """The token of the break whose writes are held ("" unless HELD)."""
        return self._hold if self._mode is Mode.HELD else ""

    def directory(self, index: int) -> _Directory:
        return _Directory(self, str(index))

    def prepare(self, op: Op) -> Prepared:
        """Before a Write is applied locally, outside fusefs' claim on it (so that many
        writers share one journal sync): record its zones where the current mode will
        look for them. ``submit(op, prepared)`` then completes the record."""
        if self._mode in (Mode.TRACK, Mode.HELD, Mode.FENCED):
            self.bitmap.mark(op)
            return Prepared(marked=True)
        try:
            return Prepared(token=self.activity.begin(op))
        except OSError as e:
            log.error("activity log failed (%s): tracking the write in the bitmap", e)
            self.bitmap.mark(op)
            return Prepared(marked=True)

    def abandon(self, prepared: Prepared) -> None:
        """The write failed locally: nothing to submit (a bitmap mark stays: harmless)."""
        if prepared.token:
            self.activity.end(prepared.token)

    def submit(self, op: Op, prepared: Prepared | None = None, background: bool = False) -> Wait:
        broke = None
        with self._cond:
            while self._quiesce or self._mode is Mode.CONNECTING:
                left = None if self._quiesce else self._deadline - time.monotonic()
                if left is not None and left <= 0:
                    broke = self._break_locked("no replication stream within the connect timeout")
                    break
                self._cond.wait(left)
            mode, sender, tracker = self._mode, self._sender, self._tracker
            self._busy += 1
        if broke is not None:
            self._notify(broke)
        try:
            if mode in (Mode.TRACK, Mode.HELD, Mode.FENCED):
                self._mark(op, prepared)  # FENCED: applied locally, the resync undoes it
                if mode is Mode.FENCED:
                    raise fenced_error(self._hold_reason)
                return _noop if mode is Mode.TRACK else self._settle
            assert sender is not None
            if mode is Mode.REPLICATE:
                return self._send(sender, op, prepared, background)
            assert tracker is not None
            zones = data_zones(op, self.zone_size)
            with tracker.zones(op_paths(op)[0], zones):
                if tracker.classify(op, zones):
                    return self._send(sender, op, prepared, background)
            self._mark(op, prepared)
            return _noop
        finally:
            with self._cond:
                self._busy -= 1
                if not self._busy:
                    self._cond.notify_all()

    def _settle(self) -> None:
        """The wait of an op the peer lacks: returns once it may be acknowledged."""
        with self._cond:
            self.held_writes += 1
            try:
                while self._mode is Mode.HELD:
                    self._cond.wait()
            finally:
                self.held_writes -= 1
            if self._mode is Mode.FENCED:
                raise fenced_error(self._hold_reason)

    def _mark(self, op: Op, prepared: Prepared | None) -> None:
        if prepared is None or not prepared.marked:
            self.bitmap.mark(op)
        if prepared is not None and prepared.token:
            self.activity.end(prepared.token)  # the bitmap holds it now

    def _send(
        self, sender: StreamSender, op: Op, prepared: Prepared | None, background: bool
    ) -> Wait:
        if prepared is not None:
            token = prepared.token  # recorded before the local write (or in the bitmap)
        else:
            try:
                token = self.activity.begin(op)
            except OSError as e:  # no crash protection for this op: track it as well
                log.error("activity log failed (%s): tracking the op in the bitmap", e)
                self.bitmap.mark(op)
                token = ()
        wait = sender.enqueue(op, inline=not background, lazy=background)

        def done() -> None:
            try:
                wait()
            except NotAcknowledged:
                self._settle()  # tracked already (on_failure or fallback)
            finally:
                self.activity.end(token)

        return done

    # -- the stream ------------------------------------------------------------------------
    def make_sender(self, build: Callable[..., StreamSender]) -> StreamSender:
        """``build(on_failure=, fallback=)`` -> a StreamSender wired to this replicator."""
        box: list[StreamSender] = []

        def on_failure(reason: str, unacked: list[Op]) -> None:
            # Runs before any waiter is released: everything the peer may lack is tracked,
            # and the mode has changed (so the waiters see HELD or TRACK).
            self.bitmap.mark_many(unacked)
            self._record_doubt()
            with self._cond:
                broke = self._break_locked(reason) if self._sender is box[0] else None
            if broke is not None:
                threading.Thread(target=self._notify, args=(broke,), daemon=True).start()

        box.append(build(on_failure=on_failure, fallback=self.bitmap.mark))
        return box[0]

    def _record_doubt(self) -> None:
        changes = self.activity.recent()  # acknowledged lately: maybe not synced there
        if self.doubt is None or changes.is_empty():
            return
        try:
            self.doubt.add(changes, self.peer_kernel)
        except OSError as e:  # no record: the zones must be resent
            log.error("peer-doubt record failed (%s): marking its zones in the bitmap", e)
            self.bitmap.mark_many(changeset_ops(changes))

    def _notify(self, broke: StreamBreak) -> None:
        try:
            self._on_stream_failure(broke)
        except Exception:
            log.exception("on_stream_failure raised")

    def _break_locked(self, reason: str, requested: bool = False) -> StreamBreak | None:
        """Leave the stream: HELD if the peer may be current, else TRACK. None if there was
        no stream to leave."""
        old, sender = self._mode, self._sender
        if old in (Mode.TRACK, Mode.HELD, Mode.FENCED):
            return None
        self._sender, self._tracker = None, None
        hold = ""
        if self._bound:
            hold = os.urandom(6).hex()
            self._mode, self._hold, self._hold_reason = Mode.HELD, hold, reason
            log.warning("replication broke (%s): holding writes (break %s)", reason, hold)
        else:
            self._mode = Mode.TRACK
        self._bound = False
        self._cond.notify_all()
        return StreamBreak(reason, old, sender, hold, requested)

    def detach(self, reason: str, requested: bool = False) -> StreamBreak | None:
        """Leave the stream on purpose (peer gone, pairing stopped, a resync asked for):
        like a failure, HELD if bound. The caller closes ``.sender`` and reports a hold."""
        with self._cond:
            return self._break_locked(reason, requested)

    def resolve_hold(self, hold: str, gate_open: bool) -> bool:
        """The write gate's verdict on break ``hold``: OPEN -> TRACK (the held waits
        return), otherwise FENCED. False if that break is not the one held."""
        with self._cond:
            if self._mode is not Mode.HELD or self._hold != hold:
                return False
            self._mode = Mode.TRACK if gate_open else Mode.FENCED
            verdict = "acknowledged (tracked)" if gate_open else "fenced (EIO)"
            log.warning("held writes of break %s: %s", hold, verdict)
            self._cond.notify_all()
            return True

    def reset(self, bound: bool, connect_timeout_s: float) -> None:
        """A fresh role (mount): TRACK, or CONNECTING when the peer may be current (a swap
        made us PRIM: nothing may be acknowledged before it has it)."""
        with self._cond:
            self._sender = self._tracker = None
            self._hold = self._hold_reason = ""
            self._bound = bound
            self._mode = Mode.CONNECTING if bound else Mode.TRACK
            self._deadline = time.monotonic() + connect_timeout_s
            self._cond.notify_all()

    def release(self) -> StreamSender | None:
        """The role ends (everything unmounted): the sender to close. Held writes are
        fenced; FENCED stays until the next ``reset`` (a straggler must not see TRACK)."""
        with self._cond:
            sender, self._sender, self._tracker = self._sender, None, None
            held = self._mode in (Mode.HELD, Mode.FENCED)
            self._mode = Mode.FENCED if held else Mode.TRACK
            self._bound = False
            self._cond.notify_all()
            return sender

    def connecting(self, timeout_s: float) -> bool:
        """TRACK -> CONNECTING (bound): new ops block until ``replicate_via``, or break
        after ``timeout_s``. False (nothing changed) unless in TRACK or CONNECTING."""
        with self._cond:
            if self._mode not in (Mode.TRACK, Mode.CONNECTING):
                return False
            self._mode, self._bound = Mode.CONNECTING, True
            self._deadline = time.monotonic() + timeout_s
            return True

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
        """TRACK -> RESYNC (the peer is not current: not bound until ``bind``)."""
        with self._cond:
            if self._mode is not Mode.TRACK:
                raise RuntimeError(f"a resync starts from TRACK, not {self._mode}")
            self._tracker = ResyncTracker(self.zone_size)
            self._mode, self._sender = Mode.RESYNC, sender
            self._cond.notify_all()
            return self._tracker

    def bind(self) -> None:
        """Just before resync-done: from now on the peer may hold a current copy."""
        with self._cond:
            self._bound = True

    @contextlib.contextmanager
    def quiesced(self) -> Iterator[None]:
        """No submit runs inside (call it *after* pausing the FUSE writers, never before)."""
        with self._cond:
            self._quiesce = True
            while self._busy:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._quiesce = False
                self._cond.notify_all()

    def finish_resync(self, sender: StreamSender, base_generation: str) -> bool:
        """Inside ``quiesced``, after resync-done: restart the record, go REPLICATE."""
        with self._cond:  # atomic with a failure: REPLICATE must not overwrite HELD
            if self._mode is not Mode.RESYNC or self._sender is not sender:
                return False
            self.bitmap.clear(base_generation)
            self.activity.clear()
            self._mode, self._tracker = Mode.REPLICATE, None
            self._cond.notify_all()
        return True
