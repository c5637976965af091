"""Transitions and failovers counted from the automaton's records
(node_agent/core/transition_counts.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from node_agent.core.states import Readiness, State
from node_agent.core.transition_counts import FAILOVER_CAUSES, TransitionCounts, is_failover
from node_agent.core.transitions import LogRecord

CAUSES = ["peer-lost", "witness-back", "elected", "prim", "swap", "replication-failed", "start"]


def rec(old: State | None, new: State | None, cause: str) -> LogRecord:
    return LogRecord(time=0.0, module="web", level="INFO", message="", cause=cause,
                     old_state=old, new_state=new, old_readiness=Readiness.READY,
                     new_readiness=Readiness.READY)  # fmt: skip


@given(st.sampled_from(list(State)), st.sampled_from(list(State)), st.sampled_from(CAUSES))
def test_failover_is_becoming_primary_from_not_serving_because_of_the_peer(
    old: State, new: State, cause: str
) -> None:
    expected = new in (State.ALONE, State.PRIM) and old not in (State.ALONE, State.PRIM) and (
        cause in ("peer-lost", "witness-back"))  # fmt: skip
    assert is_failover(old, new, cause) == expected


def test_counts_state_changes_only() -> None:
    c = TransitionCounts()
    c.record(rec(State.SECOND, State.SECOND, "resync-done"))  # readiness only
    c.record(rec(None, None, "swap"))  # a plain log line
    assert not c.transitions and not c.failovers
    c.record(rec(State.SECOND, State.ALONE, "peer-lost"))
    c.record(rec(State.PRIM, State.ALONE, "peer-lost"))  # lost its secondary: no failover
    c.record(rec(State.WAIT, State.ALONE, "witness-back"))
    c.record(rec(State.WAIT, State.ALONE, "elected"))
    assert c.transitions == {("ALONE", "peer-lost"): 2, ("ALONE", "witness-back"): 1,
                             ("ALONE", "elected"): 1}  # fmt: skip
    assert c.failovers == {"peer-lost": 1, "witness-back": 1}
    assert set(c.failovers) <= FAILOVER_CAUSES


def test_copy_is_independent() -> None:
    c = TransitionCounts()
    c.record(rec(State.SECOND, State.ALONE, "peer-lost"))
    snap = c.copy()
    c.record(rec(State.SECOND, State.ALONE, "peer-lost"))
    assert snap.failovers["peer-lost"] == 1 and c.failovers["peer-lost"] == 2
