"""Holding writes when synchronous replication breaks (core/write_gate.py, the outdate
handshake of the automaton), on the in-memory pair that models the data and the
replicator (tests/unit/pair.py). Every scenario ends with the same check: each write
the application saw acknowledged is on the node that serves."""

from __future__ import annotations

from node_agent.core.env import Env, PeerView
from node_agent.core.facts import Facts
from node_agent.core.generations import Relation, compare
from node_agent.core.machine import ModuleMachine, Policy
from node_agent.core.states import Readiness, State
from node_agent.core.write_gate import Gate, owed_at_stop, owes_promise, write_gate
from tests.unit.pair import Pair, Repl


def settled(**kw: object) -> Pair:
    pair = Pair(**kw)  # type: ignore[arg-type]
    pair.settle()
    assert pair.states() == {"node1": "PRIM", "node2": "SECOND"}
    assert pair.nodes["node1"].repl is Repl.SYNC
    return pair


def assert_nothing_lost(pair: Pair, serving: str) -> None:
    node = pair.nodes[serving]
    assert node.machine is not None and node.machine.state.is_primary
    assert node.repl in (Repl.TRACK, Repl.SYNC), node.repl
    lost = pair.acked - node.data
    assert not lost, f"{serving} lacks acknowledged writes {sorted(lost)}"


def test_stream_breaks_peer_alive_outdate_handshake_then_alone_and_resync() -> None:
    pair = settled()
    n1, n2 = pair.nodes["node1"], pair.nodes["node2"]
    before = set(pair.acked)
    pair.replication_failed("node1")
    m1, m2 = pair.machine("node1"), pair.machine("node2")
    assert n1.repl is Repl.HELD and m1.state is State.PRIM and m1.degraded
    assert m1.view().outdate == n1.hold and "acknowledges" in m1.reason
    pair.round()  # the secondary sees the token: outdated, and says so
    assert m2.state is State.WAIT and not m2.current and m2.view().outdated == n1.hold
    assert pair.acked == before, "no write acknowledged before the peer promised"
    pair.round()  # the primary sees the echo: a new generation, the gate opens
    assert m1.state is State.ALONE and n1.repl is Repl.TRACK and not n1.held
    assert compare(m1.facts.generations, m2.facts.generations) is Relation.LOCAL_NEWER
    assert pair.acked > before
    pair.settle(30)  # the rejoin delay, then a resync
    assert pair.states() == {"node1": "PRIM", "node2": "SECOND"}
    assert m1.readiness is Readiness.READY and not m1.degraded and n1.repl is Repl.SYNC
    assert n2.data == n1.data
    assert_nothing_lost(pair, "node1")


def test_both_links_cut_primary_without_witness_fences_held_writes() -> None:
    # The bug the netns test pins: the isolated primary must not acknowledge what the
    # secondary, which takes over with the witness, will never have.
    pair = settled(witness=True)
    n1 = pair.nodes["node1"]
    n1.witness_ok = n1.witness_answering = False
    pair.links_up.clear()
    acked_before = set(pair.acked)
    pair.settle(12)
    assert pair.states() == {"node1": "WAIT", "node2": "ALONE"}
    assert pair.acked - acked_before <= pair.nodes["node2"].data  # only node2's own
    assert n1.repl is Repl.NONE and pair.nodes["node2"].data >= acked_before
    assert_nothing_lost(pair, "node2")
    pair.links_up.update({"lan", "direct"})
    n1.witness_ok = n1.witness_answering = True
    pair.settle(30)
    assert pair.states() == {"node1": "SECOND", "node2": "PRIM"}
    assert pair.nodes["node1"].data == pair.nodes["node2"].data  # fenced writes undone
    assert_nothing_lost(pair, "node2")


def test_secondary_killed_writes_held_until_the_peer_timeout_then_alone() -> None:
    pair = settled()
    n1 = pair.nodes["node1"]
    pair.kill("node2")
    pair.round()
    assert n1.repl is Repl.HELD
    acked = set(pair.acked)
    pair.settle(4)  # within the 3 s timeout: the dead peer never echoes
    assert pair.acked == acked and n1.repl is Repl.HELD
    pair.settle(4)
    assert pair.states()["node1"] == "ALONE" and n1.repl is Repl.TRACK
    assert pair.acked > acked
    pair.boot("node2")
    pair.settle(20)
    assert pair.states() == {"node1": "PRIM", "node2": "SECOND"}
    assert_nothing_lost(pair, "node1")


def test_witness_in_doubt_holds_until_it_answers() -> None:
    pair = settled(witness=True)
    n1 = pair.nodes["node1"]
    n1.witness_answering = False  # failing, but within the grace period
    pair.kill("node2")
    pair.settle(10)
    assert pair.states()["node1"] == "PRIM" and n1.repl is Repl.HELD
    n1.witness_answering = True
    pair.settle(2)
    assert pair.states()["node1"] == "ALONE" and n1.repl is Repl.TRACK
    assert_nothing_lost(pair, "node1")


def test_break_while_still_alone_starts_a_new_generation() -> None:
    # The secondary was resynced and bound, but the primary has not yet seen it SECOND:
    # the writes after the break belong to a generation the secondary never had.
    pair = Pair(witness=True)
    pair.links_up.discard("direct")
    pair.settle(2)
    m1 = pair.machine("node1")
    assert m1.state is State.ALONE and pair.nodes["node1"].repl is Repl.SYNC
    gens = m1.facts.generations
    pair.links_up.clear()
    pair.settle(10)  # both reach the witness: both serve -- a split brain, as it must show
    g1, g2 = pair.machine("node1").facts.generations, pair.machine("node2").facts.generations
    assert len(g1) == len(gens) + 1 and compare(g1, g2) is Relation.DIVERGED


def test_fullsync_of_a_ready_secondary_is_a_requested_break() -> None:
    pair = settled()
    m1, n1 = pair.machine("node1"), pair.nodes["node1"]
    gens = m1.facts.generations
    pair.command("node2", "second", fullsync=True)
    pair.round()  # the primary sees a Transient secondary: drops the stream, holds
    assert n1.hold and m1.outdate_token == n1.hold and not m1.degraded
    pair.round()  # the secondary sees the token and echoes it (it is not current)
    pair.round()  # the primary sees the echo
    assert m1.peer_outdated == n1.hold and m1.state is State.PRIM
    pair.settle(10)
    assert m1.facts.generations == gens, "no new generation for a requested resync"
    assert pair.states() == {"node1": "PRIM", "node2": "SECOND"} and n1.repl is Repl.SYNC
    assert_nothing_lost(pair, "node1")


# -- the gate itself, rule by rule ---------------------------------------------------
def machine(state: State, **kw: object) -> ModuleMachine:
    m = ModuleMachine(Policy("m", "node1", "node1"), Facts(generations=("g1",)), 0.0)
    m.state, m.hold_seen, m.hold_generation = state, "t", "g1"
    for k, v in kw.items():
        setattr(m, k, v)
    return m


PEER = PeerView(State.SECOND, Readiness.READY, True, ("g1",))


def test_gate_rules() -> None:
    env_peer, env_none = Env(0.0, PEER), Env(0.0, None)
    witness_doubt = Env(0.0, None, witness_configured=True, witness_ok=True)
    assert write_gate(machine(State.WAIT), env_peer, "t") is Gate.FENCE
    assert write_gate(machine(State.STOP), env_none, "t") is Gate.FENCE
    assert write_gate(machine(State.PRIM), env_peer, "t") is Gate.HOLD
    assert write_gate(machine(State.PRIM, peer_outdated="t"), env_peer, "t") is Gate.OPEN
    assert write_gate(machine(State.PRIM, peer_outdated="old"), env_peer, "t") is Gate.HOLD
    assert write_gate(machine(State.PRIM, hold_seen="old"), env_peer, "t") is Gate.HOLD
    assert write_gate(machine(State.PRIM, forced_primary=True), env_none, "t") is Gate.OPEN
    assert write_gate(machine(State.PRIM), env_none, "t") is Gate.HOLD
    alone_newer = Facts(generations=("g1", "g2"))
    assert write_gate(machine(State.ALONE, facts=alone_newer), env_none, "t") is Gate.OPEN
    assert write_gate(machine(State.ALONE), env_none, "t") is Gate.HOLD  # same generation
    assert write_gate(machine(State.ALONE, facts=alone_newer), witness_doubt, "t") is Gate.HOLD
    assert write_gate(machine(State.PRIM, stopping=True), env_peer, "t") is Gate.FENCE
    assert write_gate(machine(State.PRIM, handing_over=True), env_peer, "t") is Gate.FENCE


# -- a clean stop of the secondary's agent (engine/node.py, _echo_outdates) -----------------
def stop_secondary_agent(pair: Pair, linger: bool) -> tuple[int, int]:
    """node2's agent stops its module, then -- ``linger`` -- stays while ``owes_promise``
    says so, then exits. (pulses node2 stayed, pulses after it left until node1's writes
    were acknowledged again without it)."""
    m2 = pair.machine("node2")
    before = m2.outdated_ack
    pair.command("node2", "stop")
    stayed = 0
    while linger and owes_promise(pair.env("node2").peer, m2.outdated_ack, before):
        assert stayed < 20, "node2 never got to leave"
        pair.round()
        stayed += 1
    pair.kill("node2")  # the agent has exited: nothing more from it
    held = 0
    while pair.nodes["node1"].repl is not Repl.TRACK:  # SYNC until it notices, then HELD
        assert held < 40, f"node1 still {pair.nodes['node1'].repl}"
        pair.round()
        held += 1
    return stayed, held


def test_a_stopping_secondary_stays_until_the_primary_took_its_promise() -> None:
    pair = settled()
    stayed, held = stop_secondary_agent(pair, linger=True)
    n1 = pair.nodes["node1"]
    assert stayed >= 2  # the break, then the token and the echo: heartbeats both ways
    assert held == 0 and n1.repl is Repl.TRACK and not n1.held  # nothing waits any more
    assert pair.machine("node1").state.is_primary
    pair.settle()
    assert_nothing_lost(pair, "node1")


def test_without_staying_the_primary_holds_its_writes_until_the_peer_timeout() -> None:
    pair = settled()
    stayed, held = stop_secondary_agent(pair, linger=False)
    # What the agent did before: the primary waited for node2's silence to count.
    assert stayed == 0 and held * pair.pulse >= pair.timeout - pair.pulse
    pair.settle()
    assert_nothing_lost(pair, "node1")


def test_what_a_stopping_secondary_owes() -> None:
    prim = PeerView(State.PRIM, Readiness.READY, True, ("g1",))
    asking = PeerView(State.PRIM, Readiness.TRANSIENT, True, ("g1",), outdate="t2")
    assert not owes_promise(None, "", "")  # silent: nobody waits on us
    assert not owes_promise(PeerView(State.STOP, Readiness.NOT_READY, False, ()), "", "")
    assert owes_promise(prim, "t1", "t1")  # the break is on its way (t1: an older one)
    assert owes_promise(asking, "t1", "t1")  # asked, not echoed yet
    assert owes_promise(asking, "t2", "t1")  # echoed, the primary has not taken it yet
    assert not owes_promise(prim, "t2", "t1")  # it took it: its token is gone


def test_which_modules_a_stopping_agent_waits_for() -> None:
    assert owed_at_stop(State.SECOND, Readiness.READY, replicated=True)
    assert not owed_at_stop(State.SECOND, Readiness.READY, replicated=False)  # no stream
    for state, readiness in ((State.SECOND, Readiness.TRANSIENT), (State.PRIM, Readiness.READY),
                             (State.ALONE, Readiness.READY), (State.WAIT, Readiness.NOT_READY),
                             (State.STOP, Readiness.NOT_READY)):  # fmt: skip
        assert not owed_at_stop(state, readiness, replicated=True), (state, readiness)
