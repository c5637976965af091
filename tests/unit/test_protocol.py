"""The protocol version and the compatibility decision (node_agent/protocol.py), how
heartbeats apply it, and an agent leaving its modules running for its successor
(Liveness): pure, time is a parameter."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node_agent.heartbeat.liveness import INCOMPATIBLE, MAX_LEAVING_S, Liveness
from node_agent.protocol import (
    PROTOCOL,
    UNVERSIONED,
    PeerBuild,
    Protocol,
    Verdict,
    announced,
    compatible,
    judge,
)
from protos.heartbeat_pb2 import Heartbeat

versions = st.builds(Protocol, st.integers(1, 5), st.integers(0, 5))
builds = st.builds(PeerBuild, versions, st.sampled_from(["", "0.1.0", "0.2.0", "1.0.0-rc1"]))


def test_a_peer_that_announces_nothing_speaks_1_0() -> None:
    assert announced(0, 0) == UNVERSIONED == Protocol(1, 0)
    assert announced(0, 7) == UNVERSIONED  # a minor without a major is no announcement
    assert announced(1, 1) == Protocol(1, 1) and announced(2, 0) == Protocol(2, 0)
    assert compatible(PROTOCOL, UNVERSIONED), "the current protocol must talk to 1.0 builds"
    assert str(Protocol(1, 1)) == "1.1"


@given(versions, versions)
def test_the_same_major_is_compatible_and_only_it(a: Protocol, b: Protocol) -> None:
    assert compatible(a, b) == (a.major == b.major) == compatible(b, a)


@given(builds, builds)
def test_the_verdict_and_what_the_operator_reads(ours: PeerBuild, theirs: PeerBuild) -> None:
    c = judge(ours, theirs)
    if theirs.protocol.major != ours.protocol.major:
        assert c.verdict is Verdict.INCOMPATIBLE
        assert "are refused" in c.message and str(theirs.protocol) in c.message
    elif theirs == ours:
        assert c == judge(ours, ours) and c.verdict is Verdict.SAME and c.message == ""
    else:
        assert c.verdict is Verdict.OTHER_BUILD and "compatible" in c.message
        assert "incompatible" not in c.message
    if c.message:  # both sides named, a build that does not say so said so
        assert str(ours.protocol) in c.message and ours.version in c.message
        assert (theirs.version or "does not say its version") in c.message


def test_a_peer_not_heard_is_unknown() -> None:
    assert judge(PeerBuild(PROTOCOL, "0.1.0"), None).verdict is Verdict.UNKNOWN


def _beat(seq: int, major: int, minor: int = 0, version: str = "", boot: int = 1) -> Heartbeat:
    return Heartbeat(cluster="demo", node_id="node2", boot_id=boot, seq=seq, link="lan",
                     echo_boot_id=7, protocol_major=major, protocol_minor=minor,
                     agent_version=version)  # fmt: skip


def test_heartbeats_of_a_compatible_peer_count_and_its_build_is_known() -> None:
    lv = Liveness(["lan"], 3.0, "node1", "demo", boot_id=7)
    assert lv.peer_build is None
    assert lv.accept("lan", _beat(1, 0), 1.0) is None  # a build before 1.1: fields absent
    assert lv.peer_build == PeerBuild(UNVERSIONED, "")
    assert lv.peer_alive(1.5)
    assert lv.accept("lan", _beat(1, PROTOCOL.major, 9, "0.3.0", boot=2), 2.0) is None
    assert lv.peer_build == PeerBuild(Protocol(PROTOCOL.major, 9), "0.3.0")


def test_heartbeats_of_an_incompatible_peer_are_refused_but_it_is_known() -> None:
    lv = Liveness(["lan"], 3.0, "node1", "demo", boot_id=7)
    other = PROTOCOL.major + 1
    for seq in range(1, 4):
        assert lv.accept("lan", _beat(seq, other, 0, "9.0.0"), float(seq)) == INCOMPATIBLE
    assert not lv.peer_alive(3.5) and lv.latest(3.5) is None
    assert lv.peer_boot_id == 0, "nothing of it is echoed: it does not count"
    assert lv.rejected_by_reason[INCOMPATIBLE] == 3 and lv.rejected_total == 3
    assert lv.peer_build == PeerBuild(Protocol(other, 0), "9.0.0")  # shown as a mismatch
    # A datagram of an older boot (a replay) does not change what the peer is known to run.
    lv.accept("lan", _beat(9, PROTOCOL.major, boot=0), 4.0)
    assert lv.peer_build == PeerBuild(Protocol(other, 0), "9.0.0")
    # Rolled back to a compatible build (a new boot): heard again.
    assert lv.accept("lan", _beat(1, PROTOCOL.major, 1, "0.1.0", boot=5), 5.0) is None
    assert lv.peer_alive(5.5)


@given(st.integers(1, 200_000), st.floats(0, 300))
def test_an_agent_leaving_its_modules_running_is_alive_as_asked(ms: int, dt: float) -> None:
    lv = Liveness(["lan"], 3.0, "node1", "demo", boot_id=7)
    assert lv.accept("lan", _beat(1, PROTOCOL.major), 0.0) is None
    leaving = _beat(2, PROTOCOL.major)
    leaving.leaving_ms = ms
    assert lv.accept("lan", leaving, 1.0) is None
    granted = min(ms / 1000, MAX_LEAVING_S)
    now = 1.0 + dt
    assert lv.peer_alive(now) == (dt < max(granted, 3.0))
    assert lv.peer_leaving(now) == (dt < granted)
    # Its module views are judged as of the moment it left while it is leaving.
    assert lv.views_at(now) == (1.0 if dt < granted else now)
    assert lv.leaving_left(now) == pytest.approx(granted - dt if dt < granted else 0.0)
    if lv.peer_alive(now):
        assert lv.latest(now) is leaving  # with the views it left with
    assert [s.up for s in lv.link_states(now)] == [dt < 3.0]  # the links say what they hear


def test_the_next_agent_ends_the_wait_and_a_stale_leaving_changes_nothing() -> None:
    lv = Liveness(["lan", "cross"], 3.0, "node1", "demo", boot_id=7)
    leaving = _beat(5, PROTOCOL.major)
    leaving.leaving_ms = 20_000
    assert lv.accept("lan", leaving, 0.0) is None
    assert lv.peer_alive(15.0)
    # The next agent (a newer boot) counts: the peer is alive by its heartbeats again, and
    # silent from then on it is dead after the timeout, not after the rest of the wait.
    assert lv.accept("lan", _beat(1, PROTOCOL.major, boot=2), 16.0) is None
    assert not lv.peer_leaving(16.0) and lv.peer_alive(18.9) and not lv.peer_alive(19.0)
    assert lv.views_at(16.5) == 16.5
    # A leaving pulse older than the newest view (a slow link) grants nothing.
    lv2 = Liveness(["lan", "cross"], 3.0, "node1", "demo", boot_id=7)
    assert lv2.accept("lan", _beat(5, PROTOCOL.major), 0.0) is None
    cross = _beat(4, PROTOCOL.major)
    cross.link, cross.leaving_ms = "cross", 20_000
    assert lv2.accept("cross", cross, 0.5) is None
    assert not lv2.peer_leaving(0.5) and not lv2.peer_alive(10.0)
