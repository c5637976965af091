"""History sync (node_agent/heartbeat/history_sync.py): summaries, completion, the
sender's rule. Pure; hypothesis explores histories that share prefixes and branch,
as real ones do (a failover appends, a resync copies, a split brain forks)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from node_agent.core import generations as gens
from node_agent.heartbeat import history_sync as hs

IDS = [gens.new_generation_id(1_700_000_000 + i, f"node{1 + i % 2}", i) for i in range(80)]


@st.composite
def related(draw: st.DrawFn, count: int = 3) -> list[hs.History]:
    """``count`` histories built as nodes build them: from a common past, each appends
    some ids of its own, then keeps the newest MAX_HISTORY."""
    pool = list(IDS)
    common = tuple(pool[: draw(st.integers(0, 40))])
    del pool[: len(common)]
    out = []
    for _ in range(count):
        cut = draw(st.integers(0, len(common)))
        own = draw(st.integers(0, 3))
        history = common[:cut] + tuple(pool[:own])
        del pool[:own]
        out.append(history[-gens.MAX_HISTORY :])
    return out


histories = st.lists(st.sampled_from(IDS), unique=True, max_size=gens.MAX_HISTORY).map(tuple)


def test_digest_is_short_and_separates_ids() -> None:
    assert len(hs.digest(())) == hs.DIGEST_LEN == 8
    assert hs.digest(("ab", "c")) != hs.digest(("a", "bc"))
    assert hs.digest(("a",)) != hs.digest(("a", "a"))
    assert hs.digest(()) != hs.digest(("",))


def test_summary_of_a_history() -> None:
    history = tuple(IDS[:5])
    s = hs.Summary.of(list(history))
    assert (s.length, s.latest, s.digest) == (5, IDS[4], hs.digest(history))
    assert s.matches(history)
    assert not s.matches(history[:-1]) and not s.matches(history[1:])
    assert hs.Summary.of(()) == hs.Summary(0, "", hs.digest(()))


@given(related(), st.sampled_from(["as drawn", "held plus one", "own plus one"]))
def test_complete_gives_the_true_history_or_none(hists: list[hs.History], shape: str) -> None:
    """Whatever we hold, completion never invents a history: it returns the peer's true
    one, and does so whenever that is a known one or a known one plus one new id."""
    truth, held, own = hists
    new = IDS[-1]  # an id none of the drawn histories has: a generation just started
    if shape == "held plus one":
        truth = gens.append(held, new)
    elif shape == "own plus one":
        truth = gens.append(own, new)
    got = hs.complete(hs.Summary.of(truth), (held, own))
    assert got is None or got == truth
    if shape != "as drawn" or truth in (held, own, ()):
        assert got == truth


@given(related(2))
def test_completed_history_gives_the_same_relations(hists: list[hs.History]) -> None:
    """What the automaton computes from a completed history is what it computes from
    the whole one (the completed one IS the whole one: checked here on every relation)."""
    truth, mine = hists
    got = hs.complete(hs.Summary.of(truth), (None, mine))
    if got is not None:
        assert gens.compare(mine, got) is gens.compare(mine, truth)
        assert gens.divergence_start(mine, got) == gens.divergence_start(mine, truth)
        assert gens.divergence_start(got, mine) == gens.divergence_start(truth, mine)


def test_complete_from_held_own_and_appended() -> None:
    base = tuple(IDS[: gens.MAX_HISTORY])
    new = IDS[50]
    grown = gens.append(base, new)  # the oldest id drops out at MAX_HISTORY
    assert len(grown) == gens.MAX_HISTORY and grown[0] == IDS[1]
    assert hs.complete(hs.Summary.of(base), (base, None)) == base
    assert hs.complete(hs.Summary.of(base), (None, base)) == base
    assert hs.complete(hs.Summary.of(grown), (base, None)) == grown
    assert hs.complete(hs.Summary.of(grown), (None, base)) == grown
    assert hs.complete(hs.Summary.of(grown), (None, None)) is None
    assert hs.complete(hs.Summary.of(()), (None, None)) == ()
    two_more = gens.append(grown, IDS[51])
    assert hs.complete(hs.Summary.of(two_more), (base, base)) is None


def test_a_forged_summary_never_completes() -> None:
    history = tuple(IDS[:4])
    wrong_digest = hs.Summary(4, IDS[3], hs.digest(tuple(IDS[1:5])))
    assert hs.complete(wrong_digest, (history, history)) is None
    wrong_length = hs.Summary(5, IDS[3], hs.digest(history))
    assert hs.complete(wrong_length, (history, history)) is None
    empty_lie = hs.Summary(0, "", hs.digest(history))
    assert hs.complete(empty_lie, (history,)) is None


@given(histories, st.one_of(st.none(), histories))
def test_needs_full_unless_the_peer_holds_exactly_ours(mine, peer_has) -> None:
    summary = hs.Summary.of(mine)
    holds = None if peer_has is None else hs.digest(peer_has)
    assert hs.needs_full(summary, holds) == (peer_has != mine)


@given(histories, st.one_of(st.none(), histories))
def test_holds_field_round_trip(own, held) -> None:
    """What a receiver says it holds is what the sender reads back, and it is empty (no
    bytes on the wire) in the usual case of a pair in sync."""
    summary = hs.Summary.of(own)
    field = hs.holds_field(held, summary)
    read = hs.holds_from_view(summary.digest, field)
    assert read == hs.digest(own if held is None else held)
    assert (field == b"") == (held is None or held == own)
    # What it says it holds, it can complete.
    assert hs.complete(hs.Summary.of(own if held is None else held), (held, own)) is not None
