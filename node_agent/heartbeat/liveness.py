"""Peer liveness and pulse scheduling: pure logic, time is a parameter (DESIGN §4).

``Liveness`` decides which heartbeats count and whether the peer is alive; the
UDP driver (``udp.py``) only feeds it datagrams and the monotonic clock. The
peer is alive while ANY link has delivered an accepted heartbeat less than
``timeout_s`` ago; it is declared dead only when every link is silent.

Replay protection is per link: the sender stamps one (boot_id, seq) per pulse
and sends that same pair on every link, so a global "highest seen" would reject
the copy that arrives second on the slower link and make that link look down.
That covers restarts of the *sender* (its boot_id grows). Restarts of the
*receiver* are covered by a challenge at first contact: every heartbeat echoes
the newest boot_id its sender heard from the peer (``echo_boot_id``), and only
one echoing the receiver's current boot_id counts. A datagram recorded before
the receiver started cannot carry it, so a replay at a restarted node changes
nothing. The peer learns a new boot_id from any authenticated datagram, even one
that does not count yet (else neither side would ever count the other's), and
keeps the highest (a replay cannot lower it); first contact costs one round trip.

A pulse may be split into several datagrams (``split.py``) sharing (boot_id, seq):
per link each part is accepted once, and only for the newest pulse heard there (a
part of an older pulse arriving late is dropped like any late datagram: what it said
is already superseded, or will be by the next pulse). The peer's ``features`` are
learned with its boot_id, from the same datagrams: before any datagram of ours counts
at the peer we have heard it, so we know what it understands (``legacy_peer``).

An agent that exits leaving its modules running (to be restarted or upgraded) says so in
a last heartbeat (``leaving_ms``): its modules go on serving, so the peer is counted alive
with that heartbeat's views for that long (at most ``MAX_LEAVING_S``), or until a heartbeat
of a newer boot counts, however slow the next agent is to start. A crash of that server
meanwhile is seen that much later.

The peer's protocol and build (``peer_build``) are learned from every authenticated
datagram of its newest boot; one of an incompatible protocol (node_agent/protocol.py)
is refused, as a wrong secret would be: its views would be misread.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from node_agent.config.model import NODE_IDS, other_node
from node_agent.heartbeat.split import FEATURE_PARTS, MAX_PARTS
from node_agent.protocol import PROTOCOL, PeerBuild, announced, compatible
from protos.heartbeat_pb2 import Heartbeat

# Rejection reasons (also used as counter labels by the driver).
UNKNOWN_LINK = "unknown link"
WRONG_CLUSTER = "wrong cluster"
OWN_NODE_ID = "own node id"
UNKNOWN_NODE_ID = "unknown node id"
WRONG_LINK = "wrong link"
REPLAY = "replay"
STALE_ECHO = "stale echo"  # recorded before this node started, or the peer has not heard it
BAD_PART = "bad part"  # part index out of its pulse's range
INCOMPATIBLE = "incompatible protocol"  # another major protocol: node_agent/protocol.py
LEAVING_S = 20.0  # what an agent leaving its modules running asks for: its successor starts
MAX_LEAVING_S = 60.0  # the most a peer is granted, whatever it asks


@dataclass(frozen=True)
class LinkState:
    name: str
    up: bool
    last_heard_age_s: float | None  # None: never heard on this link
    received: int  # accepted heartbeats
    rejected: int


@dataclass
class _Link:
    last_heard: float | None = None
    last_key: tuple[int, int] | None = None  # (boot_id, seq) last accepted here
    parts_seen: set[int] = field(default_factory=set)  # parts of last_key accepted here
    received: int = 0
    rejected: int = 0


class Liveness:
    """Which peer heartbeats are valid, per link, and whether the peer is alive."""

    def __init__(
        self, links: Iterable[str], timeout_s: float, node_id: str, cluster: str, boot_id: int
    ) -> None:
        if node_id not in NODE_IDS:
            raise ValueError(f"node id must be one of {NODE_IDS}, not {node_id!r}")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._links: dict[str, _Link] = {name: _Link() for name in links}
        if not self._links:
            raise ValueError("at least one heartbeat link is needed")
        self.timeout_s = timeout_s
        self.node_id = node_id
        self.peer_id = other_node(node_id)
        self.cluster = cluster
        self.boot_id = boot_id  # ours: the challenge every counted heartbeat echoes
        self.peer_boot_id = 0  # the newest the peer authenticated itself with: our echo
        self.peer_features = 0  # what a datagram of that boot said the peer understands
        self.peer_build: PeerBuild | None = None  # what the peer announced (None: not heard)
        self._build_boot = 0  # the peer boot_id peer_build was learned from
        # (boot_id, heard at, alive until) of the peer's last pulse when its agent left.
        self._leaving: tuple[int, float, float] | None = None
        self._peer_view: Heartbeat | None = None
        self._peer_key: tuple[int, int] | None = None
        self.rejected_total = 0
        self.rejected_by_reason: dict[str, int] = {}

    @property
    def links(self) -> list[str]:
        return list(self._links)

    def accept(self, link: str, hb: Heartbeat, now: float) -> str | None:
        """Take a decoded heartbeat received on ``link``: None if accepted, else the reason.

        A rejection is counted here; callers must not also call ``reject`` for it.
        """
        reason = self._check(link, hb)
        if reason is None:
            reason = self._learn_build(hb)
        if reason is None:
            # Authenticated and from the peer, so its boot_id is a fact worth echoing
            # even before it answers our challenge (else it does not count yet).
            self._learn_boot(hb)
            if hb.echo_boot_id != self.boot_id:
                reason = STALE_ECHO
        if reason is not None:
            self.reject(link, reason, now)
            return reason
        state = self._links[link]
        key = (hb.boot_id, hb.seq)
        if key != state.last_key:
            state.parts_seen = set()
        state.last_key = key
        state.parts_seen.add(hb.part)
        state.last_heard = now
        state.received += 1
        # The copy on the fastest link usually wins; slower copies of the same pulse
        # still refresh their link but must not roll the peer view back.
        if self._peer_key is None or key > self._peer_key:
            self._peer_key = key
            self._peer_view = hb
        if self._leaving is not None and hb.boot_id > self._leaving[0]:
            self._leaving = None  # its next agent is heard
        if hb.leaving_ms and key == self._peer_key:
            self._leaving = (hb.boot_id, now, now + min(hb.leaving_ms / 1000, MAX_LEAVING_S))
        return None

    def _check(self, link: str, hb: Heartbeat) -> str | None:
        if link not in self._links:
            return UNKNOWN_LINK
        if hb.cluster != self.cluster:
            return WRONG_CLUSTER
        if hb.node_id == self.node_id:
            return OWN_NODE_ID  # our own datagram looped back, or a misconfigured peer
        if hb.node_id != self.peer_id:
            return UNKNOWN_NODE_ID
        if hb.link != link:
            # Authenticated but meant for another network: counting it here would
            # make a dead link look up.
            return WRONG_LINK
        if hb.part >= max(hb.parts, 1) or hb.parts > MAX_PARTS:
            return BAD_PART
        state = self._links[link]
        key = (hb.boot_id, hb.seq)
        if state.last_key is not None and (
            key < state.last_key or (key == state.last_key and hb.part in state.parts_seen)
        ):
            return REPLAY
        return None

    def _learn_build(self, hb: Heartbeat) -> str | None:
        """Note the peer's protocol and build (from its newest boot: a replay of an older
        one changes nothing); INCOMPATIBLE if it speaks another major protocol."""
        build = PeerBuild(announced(hb.protocol_major, hb.protocol_minor), hb.agent_version)
        if hb.boot_id >= self._build_boot:
            self._build_boot, self.peer_build = hb.boot_id, build
        return None if compatible(PROTOCOL, build.protocol) else INCOMPATIBLE

    def _learn_boot(self, hb: Heartbeat) -> None:
        if hb.boot_id >= self.peer_boot_id:
            self.peer_boot_id = hb.boot_id
            self.peer_features = hb.features

    @property
    def legacy_peer(self) -> bool:
        """The peer runs an older agent (one datagram per pulse, whole histories): send it
        what it understands. Before we heard the peer nothing we send counts there
        (the echo challenge), so the compact format is sent then."""
        return self.peer_boot_id != 0 and not self.peer_features & FEATURE_PARTS

    def reject(self, link: str, reason: str, now: float) -> None:
        """Count a rejected datagram (codec failures, unexpected source, failed checks)."""
        del now  # kept in the signature so a later rate-based alarm needs no API change
        self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + 1
        if reason == STALE_ECHO:
            # Every first contact brings one or two of these; shown as "rejected" they
            # would alarm the operator after each restart. A replay is one too, but at
            # worst it now changes nothing.
            return
        self.rejected_total += 1
        state = self._links.get(link)
        if state is not None:
            state.rejected += 1

    def _age(self, link: str, now: float) -> float | None:
        last = self._links[link].last_heard
        # A clock that went backwards reads as "just heard", never as a negative age.
        return None if last is None else max(0.0, now - last)

    def link_up(self, link: str, now: float) -> bool:
        age = self._age(link, now)
        return age is not None and age < self.timeout_s

    def peer_alive(self, now: float) -> bool:
        return any(self.link_up(name, now) for name in self._links) or self.peer_leaving(now)

    def peer_leaving(self, now: float) -> bool:
        """The peer's agent left its modules running and its next agent is not heard yet:
        alive by its word (for at most the time it asked)."""
        return self._leaving is not None and now < self._leaving[2]

    def leaving_left(self, now: float) -> float:
        """Seconds the peer still counts as alive by its word (0: not leaving)."""
        return max(0.0, self._leaving[2] - now) if self.peer_leaving(now) else 0.0

    def views_at(self, now: float) -> float:
        """When the peer's module views are to be judged fresh (PeerModules.view): while
        its agent is leaving, the moment it left, so its last views stand; else ``now``."""
        return self._leaving[1] if self._leaving is not None and self.peer_leaving(now) else now

    def link_states(self, now: float) -> list[LinkState]:
        return [
            LinkState(
                name=name,
                up=self.link_up(name, now),
                last_heard_age_s=self._age(name, now),
                received=state.received,
                rejected=state.rejected,
            )
            for name, state in self._links.items()
        ]

    def latest(self, now: float) -> Heartbeat | None:
        """The peer's newest accepted heartbeat, or None once the peer is not alive.

        A stale view must not be acted on: a dead peer's last "I am primary" is no fact.
        """
        return self._peer_view if self.peer_alive(now) else None

    @property
    def peer_view(self) -> Heartbeat | None:
        """The newest accepted heartbeat regardless of age (for display; decisions use latest)."""
        return self._peer_view


class Pulse:
    """When to send the next heartbeat: every ``pulse_s``, or at once after ``urgent()``."""

    def __init__(self, pulse_s: float) -> None:
        if pulse_s <= 0:
            raise ValueError("pulse_s must be positive")
        self.pulse_s = pulse_s
        self._last_sent: float | None = None
        self._urgent = False

    def urgent(self) -> None:
        """A local state change: tell the peer now, not up to one pulse later."""
        self._urgent = True

    def due(self, now: float) -> bool:
        if self._urgent or self._last_sent is None:
            return True
        # now < last_sent means the clock went backwards: send rather than go quiet.
        return now < self._last_sent or now - self._last_sent >= self.pulse_s

    def delay(self, now: float) -> float:
        """Seconds until ``due`` becomes true (0 when it already is)."""
        if self.due(now):
            return 0.0
        assert self._last_sent is not None
        # The same difference as due(): last + pulse - now may round to 0 while not due.
        return self.pulse_s - (now - self._last_sent)

    def sent(self, now: float) -> None:
        self._last_sent = now
        self._urgent = False
