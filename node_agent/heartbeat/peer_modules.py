"""The peer's modules as its heartbeats tell them (DESIGN §4). Pure: time is passed in.

A pulse may come in several datagrams (``split.py``) and a view may carry only a
summary of its history (``history_sync.py``). ``PeerModules`` takes every accepted
datagram (``receive``) and answers, per module, what the automaton may act on
(``view``), under one rule: **a view that cannot be used whole is treated as a lost
datagram for that module** -- a part not received, a chunk missing, a history that
cannot be completed all leave the module's previous complete view in place. That is
what the automaton already lives with (any datagram may be lost), so every view it
sees is one the peer really sent, whole history included, and ``generations.compare``
answers as with whole histories.

Freshness is per module, as ``Liveness.latest`` is for the whole peer: a view older
than the timeout is no fact (None, as for a silent peer). A module the peer does not
have at all is told apart from one whose part was lost only by a *complete* pulse
(every part of one (boot_id, seq) heard, on any links) that does not list it: then
``view`` is ``ABSENT`` (the engine shows it as an unconfigured peer module).

It also keeps what the sender side needs (``peer_holds``, ``held``): which of our
histories the peer holds, from its latest views, and which of its histories we hold.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from node_agent.heartbeat import history_sync as hs
from protos.heartbeat_pb2 import Heartbeat, PeerModuleView

Key = tuple[int, int]  # (boot_id, seq): one pulse of the peer
OwnHistory = Callable[[str], "hs.History | None"]  # our history of a module, None if we lack it
MAX_PENDING_PULSES = 8  # incomplete pulses remembered (a few pulses' worth of late parts)


class Absent(Enum):
    ABSENT = "absent"  # the peer's latest complete pulse does not have the module


ABSENT = Absent.ABSENT


@dataclass
class _Module:
    view: PeerModuleView | None = None  # newest complete view, whole history in generations
    key: Key = (0, 0)  # the pulse it came in
    heard_at: float = -math.inf
    held: hs.History | None = None  # its history: the peer's history we hold
    seen_key: Key = (0, 0)  # newest pulse that mentioned the module, complete or not
    holds: bytes | None = None  # from that view: the digest of OUR history the peer holds
    chunks_key: Key = (0, 0)
    chunks: dict[int, tuple[str, ...]] = field(default_factory=dict)  # offset -> slice


@dataclass
class _Pulse:
    parts: int
    seen: set[int] = field(default_factory=set)
    names: set[str] = field(default_factory=set)


@dataclass
class _Mine:
    """Our side of one module, as the sender sees it."""

    history: hs.History
    before: hs.History | None = None  # our history before its last change
    whole_sent: tuple[bytes, int] = (b"", 0)  # (digest, peer boot) of the last whole one sent
    whole_sent_at: float = -math.inf


@dataclass(frozen=True)
class _Complete:
    key: Key
    names: frozenset[str]
    heard_at: float


class PeerModules:
    def __init__(self, timeout_s: float, pulse_s: float = 0.0) -> None:
        self.timeout_s = timeout_s
        self.pulse_s = pulse_s  # a whole history is sent again at most once per pulse
        self._modules: dict[str, _Module] = {}
        self._pulses: dict[Key, _Pulse] = {}
        self._complete: _Complete | None = None
        self._mine: dict[str, _Mine] = {}

    # ----- receiving ---------------------------------------------------------------------
    def receive(self, hb: Heartbeat, now: float, own: OwnHistory) -> bool:
        """Take one accepted datagram (``Liveness`` checked it). True if what ``view``
        answers may have changed (a module's view, or the set of the peer's modules)."""
        key = (hb.boot_id, hb.seq)
        changed = self._note_part(hb, key, now)
        for msg in hb.modules:
            changed |= self._take(msg, key, now, own)
        return changed

    def _note_part(self, hb: Heartbeat, key: Key, now: float) -> bool:
        if self._complete is not None and key <= self._complete.key:
            return False  # a late part (or the other link's copy) of a pulse already whole
        pulse = self._pulses.setdefault(key, _Pulse(max(hb.parts, 1)))
        pulse.seen.add(hb.part)
        pulse.names.update(m.name for m in hb.modules)
        if len(pulse.seen) < pulse.parts:
            while len(self._pulses) > MAX_PENDING_PULSES:
                del self._pulses[min(self._pulses)]
            return False
        old = self._complete
        self._complete = _Complete(key, frozenset(pulse.names), now)
        self._pulses = {k: p for k, p in self._pulses.items() if k > key}
        return old is None or old.names != self._complete.names

    def _take(self, msg: PeerModuleView, key: Key, now: float, own: OwnHistory) -> bool:
        m = self._modules.setdefault(msg.name, _Module())
        if key > m.seen_key:
            m.seen_key = key
            m.holds = hs.holds_from_view(msg.history_digest, msg.peer_history_digest) or None
        if m.view is not None and key <= m.key:
            return False  # this pulse's view is in already (or a newer one is)
        history = self._history(m, msg, key, own)
        if history is None:
            return False  # as if lost: the previous complete view stays
        view = PeerModuleView()
        view.CopyFrom(msg)
        del view.generations[:]
        view.generations.extend(history)
        view.history_offset = 0
        changed = view != m.view
        m.view, m.key, m.heard_at, m.held = view, key, now, history
        m.chunks.clear()
        return changed

    def _history(
        self, m: _Module, msg: PeerModuleView, key: Key, own: OwnHistory
    ) -> hs.History | None:
        gens = tuple(msg.generations)
        if not msg.history_digest:
            return gens  # an older sender: every view carries its whole history
        summary = hs.Summary(msg.history_length, msg.history_latest, bytes(msg.history_digest))
        whole = None
        if gens and msg.history_offset == 0 and len(gens) == summary.length:
            whole = gens
        elif gens:
            whole = self._join(m, msg.history_offset, gens, key, summary.length)
        if whole is not None and summary.matches(whole):
            return whole
        return hs.complete(summary, (m.held, own(msg.name)))

    @staticmethod
    def _join(
        m: _Module, offset: int, gens: tuple[str, ...], key: Key, length: int
    ) -> hs.History | None:
        """Add one chunk of a history cut over several parts; the whole once all are in."""
        if m.chunks_key != key:
            m.chunks_key, m.chunks = key, {}
        if offset >= length or len(m.chunks) >= length:
            return None  # nonsense from an authenticated peer: a bug, ignore it
        m.chunks[offset] = gens
        joined: list[str] = []
        while len(joined) < length and len(joined) in m.chunks:
            joined.extend(m.chunks[len(joined)])
        return tuple(joined) if len(joined) == length else None

    # ----- what the automaton sees -------------------------------------------------------
    def view(self, name: str, now: float) -> PeerModuleView | Absent | None:
        """The peer's latest complete view of ``name`` (whole history in generations);
        ABSENT if the peer does not have the module; None if nothing fresh is known."""
        m = self._modules.get(name)
        if self._absent(name, m, now):
            return ABSENT
        if m is not None and m.view is not None and now - m.heard_at < self.timeout_s:
            return m.view
        return None

    def _absent(self, name: str, m: _Module | None, now: float, boot: int = 0) -> bool:
        c = self._complete
        return (
            c is not None
            and (boot == 0 or c.key[0] == boot)
            and now - c.heard_at < self.timeout_s
            and name not in c.names
            and (m is None or m.seen_key < c.key)
        )

    # ----- what the sender needs ---------------------------------------------------------
    def held(self, name: str) -> hs.History | None:
        """The peer's history of ``name`` we hold (the last we completed), if any."""
        m = self._modules.get(name)
        return m.held if m is not None else None

    def peer_holds(self, name: str, peer_boot: int) -> bytes | None:
        """The digest of our history of ``name`` the peer holds, from its newest view of
        the module sent by its current boot (a restarted peer holds nothing)."""
        m = self._modules.get(name)
        if m is None or m.seen_key[0] != peer_boot:
            return None
        return m.holds

    def outgoing(self, msg: PeerModuleView, peer_boot: int, legacy: bool, now: float) -> None:
        """Fill in the history fields of ``msg`` (built with our whole history in
        ``generations``) and keep that history only if the peer needs it: it runs an
        older agent (``legacy``), or it has the module and its latest view does not
        show it can complete ours -- none yet from its current boot included: at first
        contact the first datagram that counts there must make its views whole (a
        module left without a view looks like a silent peer: it would start alone).
        Before we heard the peer (``peer_boot`` 0) nothing we send counts there (the
        echo challenge): no history then. Urgent pulses (a state change each) may
        follow each other closely, and the peer's ack takes a round trip: a whole
        history goes out again to the same peer boot only after ``pulse_s``."""
        history = tuple(msg.generations)
        mine = hs.Summary.of(history)
        msg.history_length, msg.history_latest = mine.length, mine.latest
        msg.history_digest = mine.digest
        msg.peer_history_digest = hs.holds_field(self.held(msg.name), mine)
        own = self._mine.setdefault(msg.name, _Mine(history))
        if own.history != history:
            own.before, own.history = own.history, history
        if legacy:
            return
        holds = self.peer_holds(msg.name, peer_boot)
        lacks = self._absent(msg.name, self._modules.get(msg.name), now, boot=peer_boot)
        recent = own.whole_sent == (mine.digest, peer_boot) and (
            0 <= now - own.whole_sent_at < self.pulse_s
        )
        if peer_boot == 0 or lacks or recent or not hs.needs_full(mine, holds, own.before):
            del msg.generations[:]
        elif history:
            own.whole_sent, own.whole_sent_at = (mine.digest, peer_boot), now
