"""Transitions and failovers counted from the automaton's records
(node_agent/core/transition_counts.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from node_agent.alerts.policy import AlertKind, AlertPolicy, Transition
from node_agent.core.states import Readiness, State
from node_agent.core.transition_counts import FAILOVER_CAUSES, TransitionCounts, is_failover
from node_agent.core.transitions import LogRecord

CAUSES = [
    "peer-lost",
    "peer-not-primary",
    "witness-back",
    "elected",
    "prim",
    "swap",
    "replication-failed",
    "start",
]


def rec(old: State | None, new: State | None, cause: str) -> LogRecord:
    return LogRecord(time=0.0, module="web", level="INFO", message="", cause=cause,
                     old_state=old, new_state=new, old_readiness=Readiness.READY,
                     new_readiness=Readiness.READY)  # fmt: skip


@given(st.sampled_from(list(State)), st.sampled_from(list(State)), st.sampled_from(CAUSES))
def test_a_failover_is_a_secondary_taking_over_and_the_alert_says_the_same(
    old: State, new: State, cause: str
) -> None:
    expected = old is State.SECOND and new is State.ALONE
    assert is_failover(old, new) == expected
    counts = TransitionCounts()
    counts.record(rec(old, new, cause))
    assert sum(counts.failovers.values()) == expected
    policy = AlertPolicy("node2", "node1")
    t = Transition(0.0, "web", old, new, Readiness.READY, cause, "why")
    sent = [a.kind for a in policy.observe(t)]
    assert (AlertKind.FAILOVER in sent) == expected


def test_counts_state_changes_only() -> None:
    c = TransitionCounts()
    c.record(rec(State.SECOND, State.SECOND, "resync-done"))  # readiness only
    c.record(rec(None, None, "swap"))  # a plain log line
    assert not c.transitions and not c.failovers
    c.record(rec(State.SECOND, State.ALONE, "peer-lost"))
    c.record(rec(State.PRIM, State.ALONE, "peer-lost"))  # lost its secondary: no failover
    c.record(rec(State.WAIT, State.ALONE, "witness-back"))  # serving again: no failover
    c.record(rec(State.WAIT, State.ALONE, "elected"))
    c.record(rec(State.SECOND, State.ALONE, "peer-not-primary"))
    assert c.transitions == {("ALONE", "peer-lost"): 2, ("ALONE", "witness-back"): 1,
                             ("ALONE", "elected"): 1, ("ALONE", "peer-not-primary"): 1}  # fmt: skip
    assert c.failovers == {"peer-lost": 1, "peer-not-primary": 1}
    assert set(c.failovers) <= FAILOVER_CAUSES


def test_copy_is_independent() -> None:
    c = TransitionCounts()
    c.record(rec(State.SECOND, State.ALONE, "peer-lost"))
    snap = c.copy()
    c.record(rec(State.SECOND, State.ALONE, "peer-lost"))
    assert snap.failovers["peer-lost"] == 1 and c.failovers["peer-lost"] == 2
