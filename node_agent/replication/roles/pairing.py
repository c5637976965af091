"""The pairing thread of a module's primary (split out of module_repl for size):
connect the stream, then go straight to REPLICATE when the peer's copy matches our
record, or run a ResyncSession; every resync-begin reply settles the zones in doubt on
the peer (peer_doubt.py). ``PairingMixin`` is a mixin of ``ModuleReplication`` and uses
its fields (primary, bitmap, doubt, _history, _mu, _sender, _session, callbacks...)."""

from __future__ import annotations

import functools
import threading
import time
from typing import TYPE_CHECKING

from node_agent.replication.resync import requests as rq
from node_agent.replication.resync.session import ResyncSession, ask
from node_agent.replication.resync.tracker import changeset_ops
from node_agent.replication.roles.primary import Mode
from node_agent.replication.stream import link_tls
from node_agent.replication.stream.sender import StreamSender

if TYPE_CHECKING:
    from node_agent.replication.module_repl import ModuleReplication

    _Base = ModuleReplication
else:
    _Base = object


class PairingMixin(_Base):
    def _connect(self, cancel: threading.Event, deadline: float) -> StreamSender:
        if self._tls_ctx is None:
            self._tls_ctx = link_tls.client_context(self._tls_paths)
        while True:
            wait = max(0.5, min(self._connect_timeout, deadline - time.monotonic()))
            args = dict(module=self.name, node_id=self.node_id, peer=self.peer_id,
                        host=self._peer_host, port=self._port, tls=self._tls_ctx,
                        generation=self._history[-1], mode=self._wire_mode,
                        ack_timeout_s=self._ack_timeout, connect_timeout_s=wait)  # fmt: skip
            sender = self.primary.make_sender(functools.partial(StreamSender, **args))
            try:
                sender.connect()
                return sender
            except (link_tls.LinkError, OSError):
                sender.close()
                if cancel.wait(0.5) or time.monotonic() + 0.5 > deadline:
                    raise

    def _pair(self, direct: bool, fullsync: bool, cancel: threading.Event) -> None:
        session = None
        try:
            deadline = time.monotonic() + self._connect_timeout * (1 if direct else 3)
            sender = self._connect(cancel, deadline)
            with self._mu:
                self._sender = sender
            if cancel.is_set():
                raise ConnectionAbortedError("pairing cancelled")
            if direct:
                hello = rq.Begin(self.node_id, self._history[-1], (), self.bitmap.zone_size)
                begin = ask(sender, hello, self._ack_timeout)
                assert isinstance(begin, rq.BeginReply)
                self._on_begin(begin)
                al = begin.activity  # what the peer's copy may hold beyond ours
                clean = al is not None and not al.get("files") and not al.get("orphaned")
                same = begin.generation == self.bitmap.base_generation
                if clean and same and self.bitmap.changes().is_empty():
                    hist = self._history  # the peer adopts it, as after a resync
                    ask(sender, rq.Done(hist[-1], hist), self._ack_timeout)
                    if self.primary.replicate_via(sender, hist[-1]):
                        self._log("info", f"replicating to {self.peer_id} (no resync needed)")
                        return self._notify(self.on_replicating)
                # The peer claims a current copy it does not have: outdate it, then resync.
                return self._broke(self.primary.detach("the copies differ: a resync is needed"))
            session = ResyncSession(
                self.primary, sender, self.copy_root, node_id=self.node_id,
                history=lambda: self._history, pause=self._paused_writers, fullsync=fullsync,
                bandwidth=self.bandwidth_cap, request_timeout_s=self._request_timeout,
                on_begin=self._on_begin, **self.session_options,
            )  # fmt: skip
            with self._mu:
                self._session = session
            self._log("info", f"resynchronizing {self.peer_id}" + (" (fullsync)" * fullsync))
            session.run()
            self._log("info", f"{self.peer_id} is up to date ({session.record}, "
                      f"{session.bytes_sent} bytes sent); replicating")  # fmt: skip
            self._notify(self.on_replicating)
        except Exception as e:
            self._pairing_failed(e, session, cancel)

    def _on_begin(self, begin: rq.BeginReply) -> None:
        """Every resync-begin reply: settle the zones in doubt on the peer (peer_doubt.py)."""
        self.primary.peer_kernel = begin.kernel
        try:
            lost = self.doubt.take(begin.kernel)
        except OSError as e:
            self._log("error", f"{e}; the resync compares hashes")
            self.bitmap.clear(None)  # type: ignore[arg-type]
            self.doubt.forget()
            return
        if lost is None:
            return
        if not lost.is_empty():
            self._log("warning", f"{self.peer_id} restarted: the zones it had not synced "
                      "to disk are resent")  # fmt: skip
            self.bitmap.mark_many(changeset_ops(lost))
        self.doubt.forget()

    def _pairing_failed(self, e: Exception, session: ResyncSession | None,
                        cancel: threading.Event) -> None:  # fmt: skip
        reason = f"{type(e).__name__}: {e}" if not isinstance(e, ConnectionError) else str(e)
        if session is not None:
            session.phase = "failed"
        brk = self.primary.detach(reason)
        self._broke(brk)
        if cancel.is_set():
            return
        self._log("warning", f"pairing with {self.peer_id} failed: {reason}")
        if (brk is None or not brk.hold) and self.primary.mode is Mode.TRACK:
            self._notify(self.on_resync_failed, reason)  # (a hold was reported as degraded)
