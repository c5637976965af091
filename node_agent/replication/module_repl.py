"""One module's replication on one node: roles, mounts, the stream, the resync.

Primary: ``become_primary`` mounts every directory (FUSE over ``copy_root/I``), in TRACK
mode -- or CONNECTING when the peer may hold a current copy (a swap made us PRIM).
``peer_is_secondary`` pairs in a background thread (``Pairing``, roles/pairing.py): a
Ready peer goes straight to REPLICATE if the records match (else the pair breaks: the
outdate handshake, then a resync); a resynchronizing peer gets a ResyncSession first.
``peer_gone`` leaves the stream; ``stop_primary`` unmounts and disconnects. Leaving a
synchronous stream, on purpose or by failure, holds the writes (roles/primary.py) until
the engine's write gate decides (``resolve_hold``).
Secondary: ``become_secondary`` / ``leave_secondary``; the node's StreamReceiver calls
``secondary_applier()`` (resolve) and ``handle_request(payload)`` (resync requests), both
answered by ``SecondarySide`` (roles/secondary.py).

Threading -- the engine must know:
- Blocking, call via ``asyncio.to_thread``: become_primary, stop_primary, peer_gone,
  peer_is_secondary (one lock serializes them; stop_primary/peer_gone may wait for the
  pairing thread and for ACKs).
- Fine on the event loop: become_secondary, leave_secondary, progress, status,
  generation_changed, secondary_applier, resolve_hold.
- handle_request runs in the receiver's apply thread (a listing scans the whole copy).
- Callbacks run in background threads (or via ``loop.call_soon_threadsafe`` if ``loop``
  is given): on_degraded(reason, hold, requested): a synchronous stream broke and writes
  are held under the token ``hold`` (automaton: replication_failed; ``requested``: the
  secondary asked for a resync); on_replicating(): REPLICATE reached, the peer is SECOND
  Ready; on_resync_failed(reason): still TRACK, call peer_is_secondary to retry;
  on_resync_done(generation, history), secondary side: the copy is identical and synced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

from node_agent.replication.fuse.mount import Mount, MountError, clear_stale_mounts
from node_agent.replication.fuse.underneath import settle_mountpoint
from node_agent.replication.local.apply import Applier
from node_agent.replication.resync import requests as rq
from node_agent.replication.roles.pairing import Pairing, PeerLink
from node_agent.replication.roles.primary import Mode, PrimaryReplicator, StreamBreak
from node_agent.replication.roles.secondary import SecondarySide
from node_agent.replication.stream import link_tls
from node_agent.replication.stream.totals import TotalsSnapshot
from node_agent.replication.stream.wire import Mode as WireMode
from node_agent.replication.tracking.activity_log import ActivityLog
from node_agent.replication.tracking.bitmap import ZoneBitmap
from node_agent.replication.tracking.journal import JournalError
from node_agent.replication.tracking.peer_doubt import PeerDoubt
from node_agent.replication.tracking.zones import DEFAULT_ZONE_SIZE, changeset_ops

log = logging.getLogger(__name__)
LogFn = Callable[[str, str], None]  # (level, message), as node_agent.resources


class Role(StrEnum):
    NONE = "none"
    PRIMARY = "primary"
    SECONDARY = "secondary"


class Progress(NamedTuple):
    active: bool
    bytes_done: int
    bytes_total: int
    rate: float  # bytes/s
    eta: float | None  # seconds; None while the rate is unknown


class ModuleReplication:
    def __init__(
        self, module_name: str, directories: Sequence[str | os.PathLike[str]], copy_root: Path,
        track_root: Path, node_id: str, peer_id: str, peer_host: str, port: int,
        tls_paths: link_tls.TlsPaths, log: LogFn | None = None, *,
        zone_size: int = DEFAULT_ZONE_SIZE, bandwidth_cap: float | None = None,
        mode: WireMode = WireMode.SYNC, ack_timeout_s: float = 5.0,
        connect_timeout_s: float = 5.0, request_timeout_s: float = 120.0,
        mount_options: dict[str, Any] | None = None, kernel: str | None = None,
        early_flush: bool = True,
        on_degraded: Callable[[str, str, bool], None] | None = None,
        on_replicating: Callable[[], None] | None = None,
        on_resync_failed: Callable[[str], None] | None = None,
        on_resync_done: Callable[[str, tuple[str, ...]], None] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:  # fmt: skip
        self.name, self.node_id, self.peer_id = module_name, node_id, peer_id
        self.directories = [Path(d) for d in directories]
        self.copy_root, self.track_root = Path(copy_root), Path(track_root)
        self.tops = [str(i) for i in range(len(self.directories))]
        for top in self.tops:
            (self.copy_root / top).mkdir(parents=True, exist_ok=True)
        self._log_fn = log
        self.bandwidth_cap = bandwidth_cap
        link = PeerLink(module_name, node_id, peer_id, peer_host, port, tls_paths,
                        WireMode(mode), ack_timeout_s, connect_timeout_s,
                        request_timeout_s)  # fmt: skip
        # how long a bound replicator waits for the stream before it holds writes
        self._connect_deadline = connect_timeout_s + ack_timeout_s
        # early_flush: both copies start writeback as data arrives (see early_flush.py)
        self._mount_options = {"early_flush": early_flush} | dict(mount_options or {})
        self.on_degraded, self.on_replicating = on_degraded, on_replicating
        self.on_resync_failed, self.on_resync_done = on_resync_failed, on_resync_done
        self._loop = loop
        self.session_options: dict[str, Any] = {}  # extra ResyncSession arguments (tests)
        self.bitmap = ZoneBitmap(self.track_root / "bitmap", zone_size)
        try:
            self.bitmap.changes()  # load now: a stored zone size wins over the configured one
        except JournalError as e:  # unreadable record: start afresh, trusted for nothing
            self._log("error", f"change bitmap unreadable ({e}); the next resync compares hashes")
            self.bitmap.clear(None)  # type: ignore[arg-type]
        self.activity = ActivityLog(self.track_root / "al", self.bitmap.zone_size)
        self.doubt = PeerDoubt(self.track_root / "peer_doubt.json", self.bitmap.zone_size)
        self.primary = PrimaryReplicator(self.bitmap, self.activity, self._stream_failed,
                                         self.doubt)  # fmt: skip
        self.secondary = SecondarySide(self.copy_root, self.tops, self.bitmap, self.activity,
                                       self._resync_done, kernel, early_flush)  # fmt: skip
        self._pairing = Pairing(
            self.primary, self.doubt, link, self.copy_root, history=lambda: self._history,
            pause=self._paused_writers, log=self._log,
            on_degraded=lambda *args: self._notify(self.on_degraded, *args),
            on_replicating=lambda: self._notify(self.on_replicating),
            on_resync_failed=lambda reason: self._notify(self.on_resync_failed, reason),
        )  # fmt: skip
        self._lock = threading.RLock()  # role changes (may wait for threads and ACKs)
        self._mu = threading.Lock()  # short field updates; never held while waiting
        self._role = Role.NONE
        self._history: tuple[str, ...] = ()
        self._mounts: list[Mount] = []

    def _log(self, level: str, message: str) -> None:
        log.log(getattr(logging, level.upper(), logging.INFO), "%s: %s", self.name, message)
        if self._log_fn is not None:
            with contextlib.suppress(Exception):
                self._log_fn(level, message)

    def _notify(self, fn: Callable[..., None] | None, *args: Any) -> None:
        if fn is None:
            return
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # loop closed: nobody listens
                self._loop.call_soon_threadsafe(fn, *args)
            return
        try:
            fn(*args)
        except Exception:
            log.exception("%s: replication callback %r raised", self.name, fn)

    @property
    def role(self) -> Role:
        return self._role

    # -- primary --------------------------------------------------------------------------
    def become_primary(
        self, generation: str, history: tuple[str, ...], bound: bool = False
    ) -> None:
        """Mount every directory (blocking; MountError if one fails). ``bound``: the peer
        may hold a current copy (we are PRIM, not ALONE): no write is acknowledged before
        the stream is up (CONNECTING), or before the write gate decides."""
        with self._lock:
            self.generation_changed(generation, history)
            if self._role is Role.PRIMARY:
                return
            self.leave_secondary()
            try:  # zones in flight when we last crashed as a primary: the peer may lack them
                self.bitmap.mark_many(changeset_ops(self.activity.load()))
            except JournalError as e:  # unknown: trust no record for the next resync
                self._log("error", f"activity log unreadable ({e}); the next resync compares")
                self.bitmap.clear(None)  # type: ignore[arg-type]
            self.activity.clear()
            self.primary.reset(bound, self._connect_deadline)
            mounts: list[Mount] = []
            try:
                for top, mp in zip(self.tops, self.directories, strict=True):
                    clear_stale_mounts(str(mp))  # a killed agent's dead mount, first
                    try:  # what is already in the directory: the data, the first time
                        taken = settle_mountpoint(mp, self.copy_root / top,
                                                  self.copy_root.parent / "quarantine",
                                                  self._log)  # fmt: skip
                    except OSError as e:
                        raise MountError(f"cannot take what is in {mp}: {e}") from e
                    if taken:  # no change record knows this data: the next resync compares
                        self.bitmap.clear(None)  # type: ignore[arg-type]
                    m = Mount(self.copy_root / top, mp, self.primary.directory(int(top)),
                              **self._mount_options)  # fmt: skip
                    m.start()
                    mounts.append(m)
            except BaseException:
                for m in reversed(mounts):
                    m.stop()
                raise
            with self._mu:
                self._mounts, self._role = mounts, Role.PRIMARY
            mode = "waiting for the secondary" if bound else "tracking changes"
            self._log("info", f"mounted {len(mounts)} replicated directories, {mode}")

    def generation_changed(self, generation: str, history: tuple[str, ...]) -> None:
        hist = tuple(history)
        with self._mu:
            self._history = hist if hist[-1:] == (generation,) else (*hist, generation)

    def peer_is_secondary(
        self, peer_latest_generation: str | None, transient: bool, fullsync: bool = False
    ) -> None:
        """Start pairing in the background (no-op if pairing or replicating already, or
        while writes are held or fenced: the write gate decides first)."""
        with self._lock:
            if self._role is not Role.PRIMARY:
                raise RuntimeError(f"module {self.name} is not primary on {self.node_id}")
            mode = self.primary.mode
            if self._pairing.running or mode in (Mode.HELD, Mode.FENCED):
                return
            if mode in (Mode.REPLICATE, Mode.CONNECTING) and (transient or fullsync):
                # The secondary asked for a resync: it stops claiming a current copy only
                # through the outdate handshake; the engine pairs again once the gate opens.
                why = "the secondary asked for a full resync" if fullsync else "resync wanted"
                return self._pairing.leave(self.primary.detach(why, requested=True))
            if mode is Mode.REPLICATE:
                return
            direct = not transient and not fullsync
            if direct:  # the peer claims a current copy: writes wait for the stream
                self.primary.connecting(self._connect_deadline)
            options = {"bandwidth": self.bandwidth_cap, **self.session_options}
            self._pairing.start(direct, fullsync, options)

    def _stream_failed(self, brk: StreamBreak) -> None:
        """From PrimaryReplicator, in a thread of its own (or a FUSE thread if CONNECTING
        timed out): the mode is HELD or TRACK already."""
        if not brk.hold:
            return  # an unbound resync: the session fails on its own and reports it
        if brk.sender is not None and brk.sender.ended_orderly:  # a stop there, not a fault
            self._log("warning", f"replication to {self.peer_id} stopped: {brk.reason}; "
                      "writes wait until it confirms its copy is outdated")  # fmt: skip
        else:
            self._log("error", f"replication to {self.peer_id} failed: {brk.reason}; writes "
                      "wait until the peer is known not to serve without them")  # fmt: skip
        self._pairing.leave(brk)

    def resolve_hold(self, hold: str, gate_open: bool) -> None:
        """The write gate's verdict (event loop): release the held writes, or fence them
        and cut the mounts off at once (pending requests fail, nothing is served)."""
        if not self.primary.resolve_hold(hold, gate_open):
            return
        if gate_open:
            self._log("warning", "held writes acknowledged: changes are tracked for a resync")
            return
        self._log("error", "held writes fenced (EIO): this node no longer serves the module")
        for m in self._mounts:
            m.fence()

    @contextlib.contextmanager
    def _paused_writers(self) -> Iterator[None]:
        """Hold every mount's writers lock exclusively: fusefs applies a change locally and
        submits it holding that lock shared, so while we hold it no change is applied but
        not yet submitted."""
        with contextlib.ExitStack() as stack:
            for m in self._mounts:
                if m.fs is not None:
                    stack.enter_context(m.fs.writers.exclusive())
            yield

    def peer_gone(self) -> None:
        """The peer is down or no longer secondary: leave the stream (held if bound)."""
        with self._lock:
            self._pairing.stop(f"{self.peer_id} is no longer a reachable secondary")

    def stop_primary(self) -> None:
        """After the resource stopped: unmount (dirty pages are replicated on the way),
        wait for the stream's ACKs, leave the role."""
        with self._lock:
            if self._pairing.running:
                self._pairing.stop("the module stops here")
            for m in reversed(self._mounts):
                m.stop()
            self._mounts = []
            self._pairing.release()
            self.activity.clear()  # every op is ACKed or marked: nothing in doubt
            self._role = Role.NONE

    # -- secondary ------------------------------------------------------------------------
    def become_secondary(self, history: tuple[str, ...]) -> None:
        """Accept the primary's stream from now on (quick: fine on the event loop)."""
        with self._mu:
            if self._role is Role.PRIMARY:
                raise RuntimeError(f"module {self.name} is still primary: stop_primary first")
            self._role = Role.SECONDARY
        self.secondary.become(history)

    def leave_secondary(self) -> None:
        """Appliers already handed out refuse every further op (their stream then ends)."""
        with self._mu:
            if self._role is Role.SECONDARY:
                self._role = Role.NONE
        self.secondary.leave()

    def secondary_applier(self) -> Applier | None:
        """For the receiver's ``resolve``: a fresh applier while SECOND here, else None."""
        return self.secondary.applier()

    def handle_request(self, payload: bytes) -> bytes:
        """For the receiver's ``handle_request`` (its apply thread)."""
        return self.secondary.handle_request(payload)

    def _resync_done(self, done: rq.Done) -> None:
        self._log("info", f"resync complete: identical to {self.peer_id} at {done.generation}")
        self._notify(self.on_resync_done, done.generation, done.history)

    # -- what the API shows ---------------------------------------------------------------
    @property
    def mount_count(self) -> int:
        return len(self._mounts)

    def progress(self) -> Progress:
        session = self._pairing.session
        if session is None:
            return Progress(False, 0, 0, 0.0, None)
        return Progress(*session.progress_tuple())

    def totals(self) -> TotalsSnapshot:
        """What the primary's streams sent over this process's life (the metrics)."""
        return self._pairing.totals.snapshot()

    def status(self) -> dict[str, Any]:
        s, sender = self._pairing.session, self._pairing.sender
        out: dict[str, Any] = {"role": str(self._role), "mode": str(self.primary.mode)}
        if sender is not None:
            out["stream_bytes_sent"] = sender.stats().bytes_sent
        if s is not None:
            out.update(phase=s.phase, record=s.record, bytes_sent=s.bytes_sent,
                       zones_sent=s.zones_sent, hash_bytes=s.hash_bytes)  # fmt: skip
        return out
