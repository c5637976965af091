"""Generations, election and facts: pure pieces the automaton builds on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node_agent.core.election import Choice, elect, primary_first
from node_agent.core.facts import Facts, FactsError, load_facts, save_facts
from node_agent.core.generations import (
    MAX_HISTORY,
    Relation,
    append,
    compare,
    generation_time,
    new_generation_id,
)

MIRROR = {
    Relation.SAME: Relation.SAME,
    Relation.LOCAL_NEWER: Relation.PEER_NEWER,
    Relation.PEER_NEWER: Relation.LOCAL_NEWER,
    Relation.DIVERGED: Relation.DIVERGED,
}


@st.composite
def two_histories(draw):
    """Two histories sharing a common prefix, each possibly extended on its own."""
    times = iter(range(1, 10_000))
    common = tuple(
        new_generation_id(next(times), "node1", i) for i in range(draw(st.integers(0, 4)))
    )
    a = common + tuple(
        new_generation_id(next(times), "node1", 100 + i) for i in range(draw(st.integers(0, 3)))
    )
    b = common + tuple(
        new_generation_id(next(times), "node2", 200 + i) for i in range(draw(st.integers(0, 3)))
    )
    return a, b


@given(two_histories())
def test_compare_is_mirror_symmetric(hist) -> None:
    a, b = hist
    assert compare(b, a) is MIRROR[compare(a, b)]


@given(two_histories())
def test_compare_classifies_by_who_extended(hist) -> None:
    a, b = hist
    rel = compare(a, b)
    if a == b:
        assert rel is Relation.SAME
    elif len(a) > len(b) and a[: len(b)] == b:
        assert rel is Relation.LOCAL_NEWER
    elif len(b) > len(a) and b[: len(a)] == a:
        assert rel is Relation.PEER_NEWER
    else:
        assert rel is Relation.DIVERGED


@given(two_histories(), st.booleans(), st.booleans(), st.booleans())
def test_election_is_symmetric(hist, a_ok: bool, b_ok: bool, a_pref: bool) -> None:
    """Both nodes, both candidates, reach the same verdict from mirror-image views."""
    a, b = hist
    rel = compare(a, b)
    if rel is Relation.DIVERGED:
        with pytest.raises(ValueError):
            elect(rel, a_ok, b_ok, a_pref)
        return
    from_a = elect(rel, a_ok, b_ok, a_pref)
    from_b = elect(MIRROR[rel], b_ok, a_ok, not a_pref)
    swap = {Choice.ME: Choice.PEER, Choice.PEER: Choice.ME, Choice.NOBODY: Choice.NOBODY}
    assert from_b is swap[from_a]
    if from_a is Choice.ME:
        assert a_ok, "a copy that is not up to date was elected"


@given(two_histories(), st.floats(0, 1e9), st.floats(0, 1e9), st.booleans(),
       st.sampled_from([0.0, 3.0, 1e12]))  # fmt: skip
def test_exactly_one_node_was_primary_first(
    hist, ta: float, tb: float, a_pref: bool, window: float
) -> None:
    a, b = hist
    assert primary_first(a, b, ta, tb, a_pref, window) != primary_first(
        b, a, tb, ta, not a_pref, window
    )


def test_concurrent_divergence_keeps_the_node_that_was_serving() -> None:
    # A partition: the secondary took over (its timer fired 1 ms earlier) while the
    # primary, serving since long before, went on alone: the primary keeps the role.
    base = (new_generation_id(100.0, "node1", 1),)
    prim = (*base, new_generation_id(5000.002, "node1", 2))  # primary since t=100
    took = (*base, new_generation_id(5000.001, "node2", 1))  # primary since t=5000.001
    assert primary_first(prim, took, 100.0, 5000.001, False, concurrent_s=3.0)
    assert not primary_first(took, prim, 5000.001, 100.0, True, concurrent_s=3.0)
    # Far apart: who went on alone first keeps it, whatever its primary_since.
    later = (*base, new_generation_id(5010.0, "node1", 2))
    assert not primary_first(later, took, 100.0, 5000.001, False, concurrent_s=3.0)


def test_generation_ids_encode_their_start_time_and_history_is_bounded() -> None:
    gid = new_generation_id(1234.5678, "node2", 7)
    assert generation_time(gid) == pytest.approx(1234.567)
    hist: tuple[str, ...] = ()
    for i in range(MAX_HISTORY + 5):
        hist = append(hist, new_generation_id(i, "node1", i))
    assert len(hist) == MAX_HISTORY and hist[-1].endswith("%08x" % (MAX_HISTORY + 4))


def test_facts_round_trip_and_fresh_default(tmp_path: Path) -> None:
    path = tmp_path / "m" / "facts.json"
    assert load_facts(path) == Facts()
    facts = Facts(uptodate=False, generations=("a", "b"), synctime=12.5)
    save_facts(path, facts)
    assert load_facts(path) == facts
    assert not path.with_suffix(".json.tmp").exists()


@pytest.mark.parametrize("content", ["{not json", json.dumps({"uptodate": True}), "[]"])
def test_malformed_facts_are_refused_naming_the_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "facts.json"
    path.write_text(content)
    with pytest.raises(FactsError, match="facts.json"):
        load_facts(path)
