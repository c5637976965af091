"""The primary's pairing with its secondary (owned by ModuleReplication): connect the
stream in a thread of its own, then go straight to REPLICATE when the peer's copy matches
our record, or run a ResyncSession; every resync-begin reply settles the zones in doubt on
the peer (tracking/peer_doubt.py). ``leave`` closes a stream the replicator left (on
purpose or by failure) and reports a hold; ``release`` drops the stream when the role
ends. ``sender`` and ``session`` are what the module's status shows.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node_agent.replication.resync import requests as rq
from node_agent.replication.resync.session import ResyncSession, ask
from node_agent.replication.roles.primary import Mode, PrimaryReplicator, StreamBreak
from node_agent.replication.stream import link_tls
from node_agent.replication.stream.sender import StreamSender
from node_agent.replication.stream.totals import StreamTotals
from node_agent.replication.stream.wire import Mode as WireMode
from node_agent.replication.tracking.peer_doubt import PeerDoubt
from node_agent.replication.tracking.zones import changeset_ops

log = logging.getLogger(__name__)
LogFn = Callable[[str, str], None]  # (level, message)


@dataclass(frozen=True)
class PeerLink:
    """Where and how the stream to the peer's receiver is opened."""

    module: str
    node_id: str
    peer_id: str
    host: str
    port: int
    tls_paths: link_tls.TlsPaths
    mode: WireMode
    ack_timeout_s: float
    connect_timeout_s: float
    request_timeout_s: float


class Pairing:
    def __init__(
        self, primary: PrimaryReplicator, doubt: PeerDoubt, link: PeerLink, copy_root: Path, *,
        history: Callable[[], tuple[str, ...]],
        pause: Callable[[], AbstractContextManager[None]], log: LogFn,
        on_degraded: Callable[[str, str, bool], None], on_replicating: Callable[[], None],
        on_resync_failed: Callable[[str], None],
    ) -> None:  # fmt: skip
        self.primary, self.doubt, self.link, self.copy_root = primary, doubt, link, copy_root
        self._history, self._pause, self._log = history, pause, log
        self._on_degraded, self._on_replicating = on_degraded, on_replicating
        self._on_resync_failed = on_resync_failed
        self._mu = threading.Lock()  # short field updates; never held while waiting
        self.sender: StreamSender | None = None
        self.totals = StreamTotals()  # what every stream of this role sent (the metrics)
        self.session: ResyncSession | None = None
        self._tls_ctx: Any = None
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, direct: bool, fullsync: bool, session_options: dict[str, Any]) -> None:
        """Pair in the background: ``direct`` when the peer claims a current copy (the
        replicator is CONNECTING), else through a resync (``session_options``: extra
        ResyncSession arguments)."""
        self._cancel = cancel = threading.Event()
        self._thread = threading.Thread(
            target=self._pair, args=(direct, fullsync, session_options, cancel),
            name=f"repl-pair-{self.link.module}", daemon=True,
        )  # fmt: skip
        self._thread.start()

    def stop(self, reason: str) -> None:
        """Cancel the pairing, leave the stream (held if bound), wait for the thread."""
        self._cancel.set()
        if self.session is not None:
            self.session.cancel()
        self.leave(self.primary.detach(reason))  # also unblocks the pairing thread
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(30.0)
            if thread.is_alive():
                log.error("%s: pairing thread did not stop", self.link.module)

    def leave(self, brk: StreamBreak | None) -> None:
        """After the replicator left a stream: close it at once (unacknowledged ops are
        marked) and report a hold (the automaton must take it in before the gate opens)."""
        if brk is None:
            return
        with self._mu:
            if brk.sender is not None and self.sender is brk.sender:
                self.sender = None
        if brk.sender is not None:
            brk.sender.close(timeout_s=0)
        if brk.hold:
            self._on_degraded(brk.reason, brk.hold, brk.requested)

    def release(self) -> None:
        """The role ends (everything unmounted): wait for the stream's ACKs, close it."""
        sender = self.primary.release()
        with self._mu:
            self.sender = None
        if sender is not None:
            sender.close()

    # -- the pairing thread ---------------------------------------------------------------
    def _connect(self, cancel: threading.Event, deadline: float) -> StreamSender:
        link = self.link
        if self._tls_ctx is None:
            self._tls_ctx = link_tls.client_context(link.tls_paths)
        while True:
            wait = max(0.5, min(link.connect_timeout_s, deadline - time.monotonic()))
            args = dict(module=link.module, node_id=link.node_id, peer=link.peer_id,
                        host=link.host, port=link.port, tls=self._tls_ctx,
                        generation=self._history()[-1], mode=link.mode,
                        ack_timeout_s=link.ack_timeout_s, connect_timeout_s=wait,
                        totals=self.totals)  # fmt: skip
            sender = self.primary.make_sender(functools.partial(StreamSender, **args))
            try:
                sender.connect()
                return sender
            except (link_tls.LinkError, OSError):
                sender.close()
                if cancel.wait(0.5) or time.monotonic() + 0.5 > deadline:
                    raise

    def _pair(
        self, direct: bool, fullsync: bool, options: dict[str, Any], cancel: threading.Event
    ) -> None:
        session, link, bitmap = None, self.link, self.primary.bitmap
        try:
            deadline = time.monotonic() + link.connect_timeout_s * (1 if direct else 3)
            sender = self._connect(cancel, deadline)
            with self._mu:
                self.sender = sender
            if cancel.is_set():
                raise ConnectionAbortedError("pairing cancelled")
            if direct:
                hello = rq.Begin(link.node_id, self._history()[-1], (), bitmap.zone_size)
                begin = ask(sender, hello, link.ack_timeout_s)
                assert isinstance(begin, rq.BeginReply)
                self._on_begin(begin)
                al = begin.activity  # what the peer's copy may hold beyond ours
                clean = al is not None and not al.get("files") and not al.get("orphaned")
                same = begin.generation == bitmap.base_generation
                if clean and same and bitmap.changes().is_empty():
                    hist = self._history()  # the peer adopts it, as after a resync
                    ask(sender, rq.Done(hist[-1], hist), link.ack_timeout_s)
                    if self.primary.replicate_via(sender, hist[-1]):
                        self._log("info", f"replicating to {link.peer_id} (no resync needed)")
                        return self._on_replicating()
                # The peer claims a current copy it does not have: outdate it, then resync.
                return self.leave(self.primary.detach("the copies differ: a resync is needed"))
            session = ResyncSession(
                self.primary, sender, self.copy_root, node_id=link.node_id,
                history=self._history, pause=self._pause, fullsync=fullsync,
                request_timeout_s=link.request_timeout_s, on_begin=self._on_begin, **options,
            )  # fmt: skip
            with self._mu:
                self.session = session
            self._log("info", f"resynchronizing {link.peer_id}" + (" (fullsync)" * fullsync))
            session.run()
            self._log("info", f"{link.peer_id} is up to date ({session.record}, "
                      f"{session.bytes_sent} bytes sent); replicating")  # fmt: skip
            self._on_replicating()
        except Exception as e:
            self._pairing_failed(e, session, cancel)

    def _on_begin(self, begin: rq.BeginReply) -> None:
        """Every resync-begin reply: settle the zones in doubt on the peer (peer_doubt.py)."""
        self.primary.peer_kernel = begin.kernel
        bitmap = self.primary.bitmap
        try:
            lost = self.doubt.take(begin.kernel)
        except OSError as e:
            self._log("error", f"{e}; the resync compares hashes")
            bitmap.clear(None)  # type: ignore[arg-type]
            self.doubt.forget()
            return
        if lost is None:
            return
        if not lost.is_empty():
            self._log("warning", f"{self.link.peer_id} restarted: the zones it had not "
                      "synced to disk are resent")  # fmt: skip
            bitmap.mark_many(changeset_ops(lost))
        self.doubt.forget()

    def _pairing_failed(self, e: Exception, session: ResyncSession | None,
                        cancel: threading.Event) -> None:  # fmt: skip
        reason = f"{type(e).__name__}: {e}" if not isinstance(e, ConnectionError) else str(e)
        if session is not None:
            session.phase = "failed"
        brk = self.primary.detach(reason)
        self.leave(brk)
        if cancel.is_set():
            return
        self._log("warning", f"pairing with {self.link.peer_id} failed: {reason}")
        if (brk is None or not brk.hold) and self.primary.mode is Mode.TRACK:
            self._on_resync_failed(reason)  # (a hold was reported as degraded)
