"""Liveness and Pulse: pure cores, driven by hypothesis with explicit time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from node_agent.heartbeat.liveness import (
    BAD_PART,
    OWN_NODE_ID,
    REPLAY,
    STALE_ECHO,
    UNKNOWN_LINK,
    UNKNOWN_NODE_ID,
    WRONG_CLUSTER,
    WRONG_LINK,
    Liveness,
    Pulse,
)
from protos.heartbeat_pb2 import Heartbeat

LINKS = ["lan", "cross"]
TIMEOUT = 3.0


OWN_BOOT = 7  # node1's boot_id: what node2's heartbeats echo


def make(boot_id: int = OWN_BOOT) -> Liveness:
    return Liveness(LINKS, TIMEOUT, "node1", "demo", boot_id=boot_id)


def hb(
    link: str, seq: int, boot_id: int = 1, node_id: str = "node2", cluster: str = "demo",
    echo: int = OWN_BOOT, part: int = 0, parts: int = 0, features: int = 0,
) -> Heartbeat:  # fmt: skip
    return Heartbeat(cluster=cluster, node_id=node_id, boot_id=boot_id, seq=seq, link=link,
                     echo_boot_id=echo, part=part, parts=parts, features=features)  # fmt: skip


def test_nothing_heard_means_dead() -> None:
    lv = make()
    assert not lv.peer_alive(0.0)
    assert lv.latest(0.0) is None
    assert [s.last_heard_age_s for s in lv.link_states(0.0)] == [None, None]


def test_accept_then_timeout_boundary() -> None:
    lv = make()
    assert lv.accept("lan", hb("lan", 1), 10.0) is None
    assert lv.peer_alive(10.0 + TIMEOUT - 1e-6)
    assert not lv.peer_alive(10.0 + TIMEOUT)  # silent for exactly timeout: down
    assert lv.latest(10.0 + TIMEOUT) is None
    assert lv.peer_view is not None  # kept for display


@pytest.mark.parametrize(
    ("link", "beat", "reason"),
    [
        ("lan", hb("lan", 1, cluster="other"), WRONG_CLUSTER),
        ("lan", hb("lan", 1, node_id="node1"), OWN_NODE_ID),
        ("lan", hb("lan", 1, node_id="node3"), UNKNOWN_NODE_ID),
        ("lan", hb("lan", 1, node_id=""), UNKNOWN_NODE_ID),
        ("lan", hb("cross", 1), WRONG_LINK),
        ("wifi", hb("wifi", 1), UNKNOWN_LINK),
    ],
)
def test_invalid_heartbeats_rejected_and_change_nothing(link, beat, reason) -> None:
    lv = make()
    assert lv.accept(link, beat, 1.0) == reason
    assert lv.rejected_total == 1
    assert lv.rejected_by_reason == {reason: 1}
    assert not lv.peer_alive(1.0)
    assert lv.peer_view is None


def test_reject_counts_per_link_and_total() -> None:
    lv = make()
    lv.reject("lan", "bad hmac", 0.0)
    lv.reject("lan", "bad hmac", 0.0)
    lv.reject("nowhere", "bad magic", 0.0)
    assert lv.rejected_total == 3
    assert {s.name: s.rejected for s in lv.link_states(0.0)} == {"lan": 2, "cross": 0}
    assert not lv.peer_alive(0.0)


def test_new_boot_accepted_after_high_seq() -> None:
    lv = make()
    assert lv.accept("lan", hb("lan", 1000, boot_id=5), 0.0) is None
    assert lv.accept("lan", hb("lan", 1, boot_id=6), 1.0) is None
    assert lv.accept("lan", hb("lan", 2000, boot_id=5), 1.0) == REPLAY
    latest = lv.latest(1.0)
    assert latest is not None and (latest.boot_id, latest.seq) == (6, 1)


def test_same_pulse_on_every_link_accepted_once_each() -> None:
    lv = make()
    assert lv.accept("cross", hb("cross", 7), 0.0) is None
    assert lv.accept("lan", hb("lan", 7), 0.1) is None  # slower link, same pulse
    assert lv.accept("lan", hb("lan", 7), 0.2) == REPLAY
    assert [s.received for s in lv.link_states(0.2)] == [1, 1]


def test_every_part_of_a_pulse_accepted_once_per_link() -> None:
    lv = make()
    assert lv.accept("lan", hb("lan", 5, part=1, parts=3), 0.0) is None  # any order
    assert lv.accept("lan", hb("lan", 5, part=0, parts=3), 0.0) is None
    assert lv.accept("lan", hb("lan", 5, part=1, parts=3), 0.0) == REPLAY
    assert lv.accept("cross", hb("cross", 5, part=1, parts=3), 0.0) is None  # other link
    assert lv.accept("lan", hb("lan", 6, part=2, parts=3), 0.1) is None  # next pulse
    # A part of the older pulse arriving late: superseded, refused like a replay.
    assert lv.accept("lan", hb("lan", 5, part=2, parts=3), 0.1) == REPLAY
    assert lv.accept("lan", hb("lan", 6, part=2, parts=3), 0.1) == REPLAY
    assert [s.received for s in lv.link_states(0.1)] == [3, 1]


@pytest.mark.parametrize(("part", "parts"), [(1, 0), (3, 3), (0, 5000)])
def test_part_out_of_range_rejected(part: int, parts: int) -> None:
    lv = make()
    assert lv.accept("lan", hb("lan", 1, part=part, parts=parts), 0.0) == BAD_PART
    assert lv.peer_boot_id == 0 and not lv.peer_alive(0.0)


def test_peer_features_learned_with_its_boot() -> None:
    lv = make()
    assert not lv.legacy_peer  # never heard: nothing we send counts there yet
    lv.accept("lan", hb("lan", 1, boot_id=5, echo=0), 0.0)  # an older agent
    assert lv.peer_boot_id == 5 and lv.legacy_peer
    lv.accept("lan", hb("lan", 1, boot_id=6, features=1), 0.0)  # restarted, upgraded
    assert lv.peer_features == 1 and not lv.legacy_peer
    lv.accept("cross", hb("cross", 9, boot_id=5), 0.0)  # the old boot, replayed
    assert lv.peer_features == 1 and not lv.legacy_peer


def test_slow_link_does_not_roll_peer_view_back() -> None:
    lv = make()
    lv.accept("cross", hb("cross", 8), 0.0)
    lv.accept("lan", hb("lan", 7), 0.1)
    latest = lv.latest(0.1)
    assert latest is not None and latest.seq == 8


@given(
    st.lists(
        st.tuples(st.sampled_from(LINKS), st.floats(0, 2 * TIMEOUT), st.booleans()),
        max_size=40,
    ),
    st.floats(0, 2 * TIMEOUT),
)
def test_peer_alive_iff_some_link_heard_within_timeout(events, final_dt) -> None:
    lv = make()
    now = 0.0
    last: dict[str, float] = {}
    for seq, (link, dt, delivered) in enumerate(events, start=1):
        now += dt
        if delivered:
            assert lv.accept(link, hb(link, seq), now) is None
            last[link] = now
    now += final_dt
    expected = {name: name in last and now - last[name] < TIMEOUT for name in LINKS}
    assert {s.name: s.up for s in lv.link_states(now)} == expected
    assert lv.peer_alive(now) == any(expected.values())
    assert (lv.latest(now) is not None) == any(expected.values())


@given(
    st.lists(st.integers(1, 50), min_size=1, max_size=30),
    st.sampled_from(LINKS),
)
def test_replays_rejected_and_counted(seqs, link) -> None:
    lv = make()
    high = 0
    rejected = 0
    for i, seq in enumerate(seqs):
        result = lv.accept(link, hb(link, seq), float(i))
        if seq > high:
            assert result is None
            high = seq
        else:
            assert result == REPLAY
            rejected += 1
    assert lv.rejected_total == rejected
    assert lv.rejected_by_reason.get(REPLAY, 0) == rejected
    states = {s.name: s for s in lv.link_states(float(len(seqs)))}
    assert states[link].rejected == rejected
    assert states[link].received == len(seqs) - rejected


@given(st.lists(st.tuples(st.sampled_from(LINKS), st.integers(1, 30)), max_size=40))
def test_links_are_independent(events) -> None:
    lv = make()
    high = dict.fromkeys(LINKS, 0)
    for link, seq in events:
        result = lv.accept(link, hb(link, seq), 0.0)
        assert (result is None) == (seq > high[link])
        high[link] = max(high[link], seq)


@given(st.sampled_from(LINKS), st.sampled_from(LINKS), st.integers(1, 10))
def test_datagram_only_valid_on_its_own_link(stamped, received_on, seq) -> None:
    lv = make()
    result = lv.accept(received_on, hb(stamped, seq), 0.0)
    assert result == (None if stamped == received_on else WRONG_LINK)
    assert lv.link_up(stamped, 0.0) == (stamped == received_on)
    other = [name for name in LINKS if name != received_on][0]
    assert not lv.link_up(other, 0.0)


def test_constructor_validates() -> None:
    with pytest.raises(ValueError):
        Liveness(LINKS, TIMEOUT, "node3", "demo", boot_id=1)
    with pytest.raises(ValueError):
        Liveness([], TIMEOUT, "node1", "demo", boot_id=1)
    with pytest.raises(ValueError):
        Liveness(LINKS, 0, "node1", "demo", boot_id=1)


def test_clock_going_back_reads_as_just_heard() -> None:
    lv = make()
    lv.accept("lan", hb("lan", 1), 10.0)
    assert lv.link_states(9.0)[0].last_heard_age_s == 0.0
    assert lv.peer_alive(9.0)


class LivenessMachine(RuleBasedStateMachine):
    """The peer pulses, links drop and reorder, an attacker replays and cross-posts."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.boot = 1
        self.seq = 0
        self.sent: list[Heartbeat] = []  # everything the peer ever sent (attacker's capture)
        self.own_boot = OWN_BOOT
        self.echo = OWN_BOOT  # the boot_id of ours the peer last heard
        self.receiver_restart()

    @rule()
    def receiver_restart(self) -> None:
        """This node's agent restarts: a new boot_id, nothing remembered."""
        self.own_boot += 1
        self.lv = make(self.own_boot)
        self.last_key: dict[str, tuple[int, int]] = {}
        self.parts_seen: dict[str, set[int]] = {}
        self.last_heard: dict[str, float] = {}
        self.best: Heartbeat | None = None
        self.rejected = 0
        self.learned = 0

    @rule()
    def peer_hears_us(self) -> None:
        self.echo = self.own_boot

    def deliver(self, link: str, beat: Heartbeat) -> None:
        key = (beat.boot_id, beat.seq)
        authentic = beat.link == link
        last = self.last_key.get(link)
        fresh = (
            last is None or key > last or (key == last and beat.part not in self.parts_seen[link])
        )
        if authentic and fresh:
            self.learned = max(self.learned, beat.boot_id)
        valid = authentic and fresh and beat.echo_boot_id == self.own_boot
        result = self.lv.accept(link, beat, self.now)
        assert (result is None) == valid, result
        if valid:
            if key != last:
                self.parts_seen[link] = set()
            self.parts_seen[link].add(beat.part)
            self.last_key[link] = key
            self.last_heard[link] = self.now
            if self.best is None or key > (self.best.boot_id, self.best.seq):
                self.best = beat
        elif result != STALE_ECHO:  # a first contact's: not shown as rejected
            self.rejected += 1

    @rule(dt=st.floats(0, 2 * TIMEOUT))
    def tick(self, dt: float) -> None:
        self.now += dt

    @rule(
        parts=st.integers(1, 3),
        order=st.lists(st.tuples(st.sampled_from(LINKS), st.integers(0, 2)), max_size=8),
    )
    def pulse(self, parts: int, order: list[tuple[str, int]]) -> None:
        """One pulse of ``parts`` datagrams per link; ``order``: those that arrive, in
        that order (duplicates: the network delivered one twice, or an attacker)."""
        self.seq += 1
        beats = {
            (link, i): hb(link, self.seq, self.boot, echo=self.echo, part=i, parts=parts)
            for link in LINKS
            for i in range(parts)
        }
        self.sent += beats.values()
        for link, i in order:
            if i < parts:
                self.deliver(link, beats[link, i])

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def replay_or_late(self, data: st.DataObject) -> None:
        # An old datagram: a replay, or a late copy delayed in the network.
        beat = data.draw(st.sampled_from(self.sent))
        self.deliver(beat.link, beat)

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def cross_post(self, data: st.DataObject) -> None:
        beat = data.draw(st.sampled_from(self.sent))
        other = [name for name in LINKS if name != beat.link][0]
        self.deliver(other, beat)

    @rule()
    def peer_restart(self) -> None:
        self.boot += 1
        self.seq = 0

    @rule(link=st.sampled_from(LINKS), reason=st.sampled_from(["bad hmac", "unexpected source"]))
    def garbage(self, link: str, reason: str) -> None:
        self.lv.reject(link, reason, self.now)
        self.rejected += 1

    @invariant()
    def matches_model(self) -> None:
        up = {n: n in self.last_heard and self.now - self.last_heard[n] < TIMEOUT for n in LINKS}
        assert {s.name: s.up for s in self.lv.link_states(self.now)} == up
        assert self.lv.peer_alive(self.now) == any(up.values())
        assert self.lv.rejected_total == self.rejected
        assert self.lv.peer_view == self.best
        assert self.lv.latest(self.now) == (self.best if any(up.values()) else None)
        assert self.lv.peer_boot_id == self.learned


LivenessMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40)
TestLivenessMachine = LivenessMachine.TestCase


@given(st.lists(st.one_of(st.floats(0, 2), st.none()), max_size=40))
def test_pulse_schedule(steps) -> None:
    """due() is true at the first call, after pulse_s, and after urgent(); delay agrees."""
    pulse = Pulse(0.5)
    now = 0.0
    last_sent: float | None = None
    urgent = False
    for step in steps:
        if step is None:
            pulse.urgent()
            urgent = True
            continue
        now += step
        expected = urgent or last_sent is None or now - last_sent >= 0.5
        assert pulse.due(now) == expected
        assert (pulse.delay(now) == 0.0) == expected
        if not expected:
            assert last_sent is not None
            assert pulse.delay(now) == pytest.approx(last_sent + 0.5 - now)
        if expected:
            pulse.sent(now)
            last_sent, urgent = now, False


def test_pulse_urgent_and_clock_back() -> None:
    pulse = Pulse(1.0)
    pulse.sent(5.0)
    assert not pulse.due(5.5)
    pulse.urgent()
    assert pulse.due(5.5)
    pulse.sent(5.5)
    assert not pulse.due(6.0)
    assert pulse.due(4.0)  # clock went back: send rather than go quiet
    with pytest.raises(ValueError):
        Pulse(0)


def test_a_replay_at_a_restarted_receiver_never_counts() -> None:
    before = make(OWN_BOOT)
    captured = [hb(link, seq, boot_id=5) for seq in range(1, 20) for link in LINKS]
    for beat in captured[:10]:
        assert before.accept(beat.link, beat, 1.0) is None
    restarted = make(OWN_BOOT + 1)  # the receiver's agent restarts: nothing remembered
    for i, beat in enumerate(captured):  # the whole capture, at its original pace
        assert restarted.accept(beat.link, beat, 2.0 + i / 4) == STALE_ECHO
        assert not restarted.peer_alive(2.0 + i / 4)
    assert restarted.rejected_by_reason == {STALE_ECHO: len(captured)}
    # The live peer learned the new boot_id from the restarted node: counted again.
    assert restarted.peer_boot_id == 5
    fresh = hb("lan", 100, boot_id=5, echo=OWN_BOOT + 1)
    assert restarted.accept("lan", fresh, 10.0) is None and restarted.peer_alive(10.0)


def test_the_echo_learns_the_newest_authentic_boot_only() -> None:
    lv = make()
    assert lv.accept("lan", hb("lan", 1, boot_id=9, echo=0), 0.0) == STALE_ECHO
    assert lv.peer_boot_id == 9  # learned from a datagram that did not count
    assert lv.accept("lan", hb("lan", 1, boot_id=3, echo=0), 0.0) == STALE_ECHO
    assert lv.peer_boot_id == 9  # an older boot (a replay) cannot lower it
    assert lv.accept("lan", hb("cross", 2, boot_id=11), 0.0) == WRONG_LINK
    assert lv.peer_boot_id == 9  # nor a datagram that fails the other checks
