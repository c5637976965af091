"""The automaton's inputs for the data plane (issue 13): adopting what a data plane kept
serving through an agent restart, and the death of a data plane."""

from __future__ import annotations

from node_agent.core.env import Env, PeerView
from node_agent.core.facts import Facts
from node_agent.core.machine import ModuleMachine, Policy
from node_agent.core.states import Readiness, State

GEN = ("0000000000001-node1-00000001",)


def _machine(node: str = "node1") -> ModuleMachine:
    policy = Policy(module="web", node_id=node, preferred="node1", detection_timeout_s=3.0)
    return ModuleMachine(policy, Facts(generations=GEN, uptodate=True), now=100.0)


def _peer(state: State, readiness: Readiness = Readiness.READY) -> PeerView:
    return PeerView(state=state, readiness=readiness, uptodate=True, generations=GEN)


def _env(now: float, peer: PeerView | None) -> Env:
    return Env(now=now, peer=peer, witness_configured=True, witness_ok=False,
               witness_answering=False)  # fmt: skip


def test_an_adopted_primary_waits_to_hear_the_peer_before_judging_it_gone() -> None:
    m = _machine()
    m.adopt(State.PRIM, _env(100.0, None), primary_since=50.0)
    assert (m.state, m.last_rule) == (State.PRIM, "adopted")
    assert m.primary_since == 50.0 and m.resource_up and m.facts.generations == GEN
    m.step(_env(102.0, None))  # not heard yet: no verdict
    assert m.state is State.PRIM
    m.step(_env(102.5, _peer(State.SECOND)))
    assert (m.state, m.readiness) == (State.PRIM, Readiness.READY)
    m.step(_env(110.0, None))  # past the grace, silent peer and no witness: the usual rules
    assert m.state is not State.PRIM


def test_an_adopted_primary_whose_peer_stays_silent_is_judged_after_the_grace() -> None:
    m = _machine()
    m.adopt(State.PRIM, _env(100.0, None))
    m.step(_env(103.5, None))
    assert m.state is State.WAIT  # neither peer nor witness: it does not serve blind


def test_an_adopted_secondary_is_ready_only_with_a_current_copy() -> None:
    for current, ready in ((True, Readiness.READY), (False, Readiness.TRANSIENT)):
        m = _machine("node2")
        m.adopt(State.SECOND, _env(100.0, _peer(State.PRIM)), current=current)
        assert (m.state, m.readiness) == (State.SECOND, ready)


def test_adopt_changes_nothing_once_the_module_runs() -> None:
    m = _machine()
    m.command("start", "test", _env(100.0, _peer(State.SECOND, Readiness.NOT_READY)))
    before = (m.state, m.readiness)
    m.adopt(State.PRIM, _env(100.1, None))
    assert (m.state, m.readiness) == before


def test_a_dead_data_plane_steps_a_primary_down_until_it_is_back() -> None:
    m = _machine()
    m.adopt(State.PRIM, _env(100.0, _peer(State.SECOND)))
    m.data_plane_lost("Socket closed", _env(101.0, _peer(State.SECOND)))
    assert (m.state, m.last_rule) == (State.WAIT, "data-plane") and not m.want_running
    assert not m.candidate, "not a candidate while its data plane is down"
    logs = [r.message for r in m.drain_logs()]
    assert any("data plane died: Socket closed" in t for t in logs), logs
    # The peer took over; the data plane is back: this node follows as secondary.
    m.step(_env(102.0, _peer(State.ALONE)))
    assert m.state is State.WAIT
    m.data_plane_back(_env(103.0, _peer(State.ALONE)))
    assert m.state is State.SECOND


def test_a_dead_data_plane_of_a_stopped_module_changes_nothing() -> None:
    m = _machine()
    m.data_plane_lost("gone", _env(100.0, None))
    assert m.state is State.STOP and not m.checker_wait


def test_the_split_brain_survivor_serves_even_if_the_loser_saw_it_first() -> None:
    """Found by test_engine_replication: node2 (wrote second) flagged the split brain and
    waited before node1 (wrote first) had decided; node1 then saw a peer that is no longer
    a candidate and waited too -- neither served."""
    shared = "0000000000001-node1-00000001"
    m = ModuleMachine(Policy(module="web", node_id="node1", preferred="node1"),
                      Facts(generations=(shared, "0000000002000-node1-00000002"),
                            uptodate=True), now=100.0)  # fmt: skip
    m.command("start", "test", _env(100.0, None))
    loser = PeerView(state=State.WAIT, readiness=Readiness.NOT_READY, uptodate=True,
                     generations=(shared, "0000000003000-node2-00000001"),
                     split_brain=True)  # fmt: skip
    m.step(_env(100.5, loser))
    assert (m.state, m.last_rule) == (State.ALONE, "split-brain-survivor")
