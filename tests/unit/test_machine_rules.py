"""Scenario tests of the automaton's rules (DESIGN §3), on the in-memory pair."""

from __future__ import annotations

import pytest

from node_agent.core.generations import Relation, compare
from node_agent.core.states import Readiness, State
from tests.unit.pair import Pair


def states(pair: Pair) -> tuple[str, str]:
    s = pair.states()
    return s["node1"], s["node2"]


def settled(**kw) -> Pair:
    pair = Pair(**kw)
    pair.settle()
    return pair


def causes(pair: Pair, node: str) -> list[str]:
    return [r.cause for r in pair.machine(node).drain_logs()]


def test_both_start_preferred_becomes_primary_other_secondary_ready() -> None:
    pair = settled()
    assert states(pair) == ("PRIM", "SECOND")
    assert pair.machine("node1").readiness is Readiness.READY
    assert pair.machine("node2").readiness is Readiness.READY


def test_preferred_node2_is_honoured() -> None:
    assert states(settled(preferred="node2")) == ("SECOND", "PRIM")


def test_primary_killed_secondary_goes_alone_with_new_generation() -> None:
    pair = settled()
    before = pair.machine("node2").facts.generations
    pair.kill("node1")
    pair.settle(4)  # 2 s < 3 s timeout: nothing yet
    assert states(pair) == ("DOWN", "SECOND")
    pair.settle(4)
    assert states(pair) == ("DOWN", "ALONE")
    after = pair.machine("node2").facts.generations
    assert len(after) == len(before) + 1 and after[:-1] == before
    assert "peer-lost" in causes(pair, "node2")


def test_returning_node_comes_back_secondary_and_resyncs() -> None:
    pair = settled()
    pair.kill("node1")
    pair.settle()
    pair.boot("node1")
    pair.settle()
    assert states(pair) == ("SECOND", "PRIM")
    m1, m2 = pair.machine("node1"), pair.machine("node2")
    assert m1.readiness is Readiness.READY
    assert compare(m1.facts.generations, m2.facts.generations) is Relation.SAME


def test_one_link_cut_changes_nothing() -> None:
    pair = settled()
    pair.links_up.discard("direct")
    pair.settle(30)
    assert states(pair) == ("PRIM", "SECOND")


def test_all_links_cut_no_witness_both_serve_then_split_brain_resolved() -> None:
    pair = settled()
    pair.links_up.clear()
    pair.settle()
    assert states(pair) == ("ALONE", "ALONE")
    pair.links_up.add("lan")
    pair.settle()
    # node1 was primary first: it keeps serving; node2 waits with split brain.
    assert states(pair) == ("ALONE", "WAIT")
    m2 = pair.machine("node2")
    assert m2.split_brain and "split brain" in m2.reason
    out = pair.command("node2", "second")
    assert out.accepted
    pair.settle()
    assert states(pair) == ("PRIM", "SECOND")


def split_brain() -> Pair:
    """Both served while every link was cut; back together, node1 (primary first)
    serves and node2 waits with split brain."""
    pair = settled()
    pair.links_up.clear()
    pair.settle()
    pair.links_up.add("lan")
    pair.settle()
    return pair


def test_a_stopped_split_brain_loser_still_keeps_its_own_changes_on_second() -> None:
    # stop clears the split-brain flag; the diverged history is still there, and
    # `second` must still keep what this copy wrote alone before it is resynced.
    pair = split_brain()
    m2 = pair.machine("node2")
    assert states(pair) == ("ALONE", "WAIT") and m2.split_brain
    assert pair.command("node2", "stop").accepted
    pair.settle()
    assert states(pair) == ("ALONE", "STOP") and not m2.split_brain
    assert pair.command("node2", "second").accepted
    assert m2.quarantine_wanted
    pair.settle()
    assert states(pair) == ("PRIM", "SECOND")


@pytest.mark.parametrize("peer_down", [False, True], ids=["survivor stopped", "survivor down"])
def test_keeping_the_split_brain_losers_copy_instead(peer_down: bool) -> None:
    # The route SPLIT_BRAIN_MSG gives: stop the survivor, force the loser primary; the
    # old survivor, started again, knows the operator's choice: it keeps its own changes
    # in quarantine and resyncs, with nobody running `second` there.
    pair = split_brain()
    m1, m2 = pair.machine("node1"), pair.machine("node2")
    assert states(pair) == ("ALONE", "WAIT")
    assert not pair.command("node2", "prim").accepted  # node1 still serves
    survivor = m1.facts.generations[-1]
    if peer_down:  # its agent dead: node2 remembers the history it diverged from
        pair.kill("node1")
    else:
        assert pair.command("node1", "stop").accepted
    pair.settle()
    out = pair.command("node2", "prim")
    assert out.accepted and "kept over the peer's copy" in out.message
    assert m2.facts.kept_over == survivor and m2.view().kept_over == survivor
    pair.settle()
    if peer_down:
        pair.boot("node1", autostart=False)
        m1 = pair.machine("node1")
    assert states(pair) == ("STOP", "ALONE")
    assert pair.command("node1", "start").accepted
    pair.round()
    assert m1.state is State.SECOND and m1.quarantine_wanted and not m1.split_brain
    assert m1.last_rule == "survivor-chosen"
    pair.settle()
    assert states(pair) == ("SECOND", "PRIM")
    assert m2.facts.kept_over == ""  # done: a later divergence is a new split brain


def test_a_choice_over_another_generation_is_still_a_split_brain() -> None:
    """kept_over names the copy the admin chose against: a survivor that wrote again
    since is not that copy, and waits for a decision."""
    pair = split_brain()
    assert pair.command("node1", "stop").accepted
    pair.settle()
    assert pair.command("node2", "prim").accepted
    pair.settle()  # node1's agent hears node2 serve before node1 is started again
    m1 = pair.machine("node1")
    m1.facts = type(m1.facts)(generations=(*m1.facts.generations, "later-alone"))
    assert pair.command("node1", "start").accepted
    pair.settle()
    assert states(pair) == ("WAIT", "ALONE") and m1.split_brain


def test_degraded_ends_with_a_secondary_again_and_with_the_primary_role() -> None:
    pair = settled()
    m1 = pair.machine("node1")
    pair.replication_failed("node1")
    seen = []
    for _ in range(20):  # alone and degraded, then the peer resyncs: no longer degraded
        pair.round()
        seen.append((m1.state, m1.degraded))
    assert (State.ALONE, True) in seen and seen[-1] == (State.PRIM, False)
    assert (State.PRIM, True) not in seen[seen.index((State.ALONE, True)) :]
    pair.replication_failed("node1")
    pair.round()
    assert m1.degraded
    assert pair.command("node1", "stop").accepted
    pair.settle()
    assert m1.state is State.STOP and not m1.degraded  # no primary, no degraded primary


def test_second_after_a_clean_outage_quarantines_nothing() -> None:
    pair = settled()
    pair.kill("node2")
    pair.settle()
    pair.boot("node2")
    pair.settle()
    assert states(pair) == ("PRIM", "SECOND")
    m2 = pair.machine("node2")
    assert pair.command("node2", "stop").accepted
    pair.settle()
    assert pair.command("node2", "second").accepted
    assert not m2.quarantine_wanted  # its history is the primary's: nothing of its own


def test_witness_reachable_only_from_node2() -> None:
    pair = settled(witness=True)
    pair.links_up.clear()
    pair.nodes["node1"].witness_ok = pair.nodes["node1"].witness_answering = False
    pair.settle()
    assert states(pair) == ("WAIT", "ALONE")
    assert not pair.machine("node1").want_running


def test_witness_unreachable_from_both_nobody_serves() -> None:
    pair = settled(witness=True)
    pair.links_up.clear()
    for n in ("node1", "node2"):
        pair.nodes[n].witness_ok = pair.nodes[n].witness_answering = False
    pair.settle()
    assert states(pair) == ("WAIT", "WAIT")
    assert not any(pair.machine(n).want_running for n in ("node1", "node2"))


def test_swap_exchanges_roles_without_resync() -> None:
    pair = settled()
    out = pair.command("node1", "swap")
    assert out.accepted, out.message
    pair.settle()
    assert states(pair) == ("SECOND", "PRIM")
    assert "resync-done" not in causes(pair, "node1")
    assert pair.machine("node1").readiness is Readiness.READY


def test_swap_refused_without_ready_secondary() -> None:
    pair = settled()
    pair.kill("node2")
    pair.settle()
    out = pair.command("node1", "swap")
    assert not out.accepted and "peer" in out.message


def test_stop_on_primary_secondary_takes_over() -> None:
    pair = settled()
    assert pair.command("node1", "stop").accepted
    pair.settle()
    assert states(pair) == ("STOP", "ALONE")


def test_stop_on_secondary_primary_goes_alone() -> None:
    pair = settled()
    assert pair.command("node2", "stop").accepted
    pair.settle()
    assert states(pair) == ("ALONE", "STOP")


def test_not_uptodate_refused_by_start_allowed_by_prim() -> None:
    pair = settled()
    pair.kill("node2")  # the secondary dies; node1 goes on alone
    pair.settle()
    pair.kill("node1")
    pair.boot("node2")  # node2 alone: its copy is stale
    pair.settle()
    m2 = pair.machine("node2")
    assert m2.state is State.WAIT and m2.readiness is Readiness.NOT_READY
    assert "not be up to date" in m2.reason
    out = pair.command("node2", "prim")
    assert out.accepted and "NOT up to date" in out.message
    pair.settle()
    assert m2.state is State.ALONE
    prim_logs = [r for r in m2.drain_logs() if r.cause == "prim"]
    assert prim_logs and all(r.who == "tester" for r in prim_logs)


@pytest.mark.parametrize("maxloop", [0, 1, 3])
def test_checker_restarts_locally_up_to_maxloop_then_fails_over(maxloop: int) -> None:
    pair = settled(maxloop=maxloop)
    m1 = pair.machine("node1")
    for i in range(maxloop):
        token = m1.restart_token
        m1.checker_failed("restart", f"failure {i}", pair.env("node1"))
        assert m1.restart_token == token + 1
        pair.settle(2)
        assert m1.state is State.PRIM
    m1.checker_failed("restart", "once too often", pair.env("node1"))
    pair.settle()
    # node1 stopped and started again; node2 took over and node1 came back secondary.
    assert states(pair) == ("SECOND", "PRIM")
    assert "maxloop" in causes(pair, "node1")


@pytest.mark.parametrize("answered", [False, True])
def test_restarts_that_never_come_up_count_however_slow(answered: bool) -> None:
    """loop_interval_s is 60 s here; each restart takes longer (a VM given its
    start_timeout_s to boot that never does). Unless the resource passed its checks in
    between, the second failure exceeds maxloop (1) anyway."""
    pair = settled(maxloop=1)
    m1 = pair.machine("node1")
    m1.checker_failed("restart", "guest agent silent", pair.env("node1"))
    pair.settle(2)
    pair.now += 200.0  # far past loop_interval_s
    if answered:
        m1.resource_answered(pair.env("node1"))
    m1.checker_failed("restart", "guest agent silent again", pair.env("node1"))
    pair.settle()
    assert ("maxloop" in causes(pair, "node1")) is not answered
    assert states(pair) == (("PRIM", "SECOND") if answered else ("SECOND", "PRIM"))


def test_checker_wait_on_secondary_until_cleared() -> None:
    pair = settled()
    m2 = pair.machine("node2")
    m2.checker_failed("wait", "iface down", pair.env("node2"))
    pair.settle()
    assert states(pair) == ("ALONE", "WAIT")
    m2.checker_cleared(pair.env("node2"))
    pair.settle()
    assert states(pair) == ("PRIM", "SECOND")


def test_defaultprim_swaps_back_to_preferred_node() -> None:
    pair = settled(defaultprim=True)
    pair.kill("node1")
    pair.settle()
    assert states(pair) == ("DOWN", "ALONE")
    pair.boot("node1")
    pair.settle()
    assert states(pair) == ("PRIM", "SECOND")


def test_secondary_killed_during_resync_cannot_serve_alone() -> None:
    pair = settled()
    pair.kill("node2")
    pair.settle()
    pair.boot("node2", autostart=False)
    # node2 starts as secondary, then node1 dies before node2 finishes its resync.
    pair.machine("node2").command("second", "t", pair.env("node2"))
    m2 = pair.machine("node2")
    assert m2.state is State.SECOND and m2.readiness is Readiness.TRANSIENT
    pair.kill("node1")
    pair.settle()
    assert pair.machine("node2").state is State.WAIT
    assert not pair.machine("node2").want_running


def test_every_transition_is_logged_with_its_cause() -> None:
    pair = settled()
    recs = [r for r in pair.machine("node1").drain_logs() if r.new_state is not None]
    assert recs and all(r.cause for r in recs)
    assert all(r.old_state is not None for r in recs)


def test_alone_primary_steps_down_on_witness_loss_and_resumes_when_it_returns() -> None:
    pair = settled(witness=True)
    pair.kill("node2")
    pair.settle()
    assert states(pair) == ("ALONE", "DOWN")
    pair.nodes["node1"].witness_ok = pair.nodes["node1"].witness_answering = False
    pair.settle()
    assert states(pair) == ("WAIT", "DOWN") and not pair.machine("node1").want_running
    pair.nodes["node1"].witness_ok = pair.nodes["node1"].witness_answering = True
    pair.settle()
    assert states(pair) == ("ALONE", "DOWN")
    assert "witness-back" in causes(pair, "node1")


def test_isolated_primary_does_not_resume_when_only_the_witness_returns() -> None:
    pair = settled(witness=True)
    pair.links_up.clear()
    pair.nodes["node1"].witness_ok = pair.nodes["node1"].witness_answering = False
    pair.settle()
    assert states(pair) == ("WAIT", "ALONE")
    pair.nodes["node1"].witness_ok = pair.nodes["node1"].witness_answering = True
    pair.settle()
    assert states(pair) == ("WAIT", "ALONE")


def test_witness_in_doubt_delays_takeover_until_it_answers_or_is_lost() -> None:
    pair = settled(witness=True)
    pair.links_up.clear()
    n1 = pair.nodes["node1"]
    n1.witness_answering = False  # failing, but not for the whole grace period yet
    pair.nodes["node2"].witness_answering = False
    pair.settle()
    # Neither starts a new generation while the witness is in doubt.
    assert states(pair) == ("PRIM", "SECOND")
    n1.witness_ok = False  # node1: lost for good
    pair.nodes["node2"].witness_answering = True  # node2: answers
    pair.settle()
    assert states(pair) == ("WAIT", "ALONE")
    n1.witness_ok = n1.witness_answering = True
    pair.settle()
    assert states(pair) == ("WAIT", "ALONE")  # node1 was isolated, not alone: no resume


def test_a_stopped_secondary_is_no_failure_and_the_stop_names_who() -> None:
    pair = settled()
    m1, m2 = pair.machine("node1"), pair.machine("node2")
    m1.drain_logs()
    assert pair.command("node2", "stop").accepted
    pair.break_stream("node1")  # its stream broke as it left, before its STOP was heard
    pair.settle()
    assert m1.state is State.ALONE and not m1.degraded
    assert m2.state is State.STOP and m2.last_rule == "stop by tester"
    assert pair.command("node1", "stop").accepted
    pair.settle()
    assert m1.state is State.STOP and m1.last_rule == "stop by tester"  # after its resource


def test_routine_transitions_are_info_and_failures_warnings() -> None:
    pair = Pair()
    pair.round()
    start = [r for r in pair.machine("node1").drain_logs() if r.new_state is State.WAIT]
    assert start and all(r.level == "INFO" for r in start)  # looking for the peer
    pair.settle()
    pair.machine("node2").drain_logs()
    pair.kill("node1")
    pair.settle()
    lost = [r for r in pair.machine("node2").drain_logs() if r.new_state is State.ALONE]
    assert lost[0].level == "WARNING" and lost[0].cause == "peer-lost"  # the primary was lost
