"""Random event sequences against two automatons joined by an in-memory transport.

Invariants (DESIGN §3, issue 2):
- never two primaries once the nodes have exchanged heartbeats over a link that is up;
- a copy that is not up to date never becomes primary on its own (only `prim`);
- the witness rule: without the peer and without a configured witness, no node serves
  (unless an admin forced it with `prim`);
- never lose an acknowledged write: a node that acknowledges writes has every one the application
  saw acknowledged (tests/unit/pair.py models the data, the replicator and its write
  gate), unless an admin forced a primary or the two histories diverged (a split brain:
  both nodes reached the witness but not each other, DESIGN §4; the loser's writes are
  quarantined, not served).
The second and third are also guarded inside the automaton (InvalidTransition), so any
rule that breaks them fails here with the exact step.
"""

from __future__ import annotations

import os

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from node_agent.core.generations import Relation, compare
from node_agent.core.machine_commands import COMMANDS
from tests.unit.pair import LINKS, NODES, Pair, Repl

node_ids = st.sampled_from(NODES)


class TwoNodes(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.pair = Pair(witness=True)
        self.both_primary_at = -1.0
        self.loss_allowed = ""

    @rule(n=st.integers(1, 8))
    def rounds(self, n: int) -> None:
        for _ in range(n):
            self.pair.round()
            self.check_pair()

    @rule(link=st.sampled_from(LINKS))
    def cut(self, link: str) -> None:
        self.pair.links_up.discard(link)

    @rule(link=st.sampled_from(LINKS))
    def restore(self, link: str) -> None:
        self.pair.links_up.add(link)

    @rule(node=node_ids)
    def kill(self, node: str) -> None:
        if self.pair.nodes[node].alive:
            self.pair.kill(node)

    @rule(node=node_ids, autostart=st.booleans())
    def boot(self, node: str, autostart: bool) -> None:
        if not self.pair.nodes[node].alive:
            self.pair.boot(node, autostart)

    @rule(node=node_ids, mode=st.sampled_from(["answers", "in-doubt", "lost"]))
    def witness(self, node: str, mode: str) -> None:
        # in-doubt: the last probe failed but the failures are within the grace period.
        self.pair.nodes[node].witness_ok = mode != "lost"
        self.pair.nodes[node].witness_answering = mode == "answers"

    @rule(node=node_ids, name=st.sampled_from(COMMANDS), fullsync=st.booleans())
    def command(self, node: str, name: str, fullsync: bool) -> None:
        if self.pair.nodes[node].alive:
            out = self.pair.command(node, name, fullsync)
            if name == "prim" and out.accepted:
                self.loss_allowed = self.loss_allowed or "prim"

    @rule(node=node_ids, action=st.sampled_from(["restart", "stopstart", "wait"]))
    def checker_fails(self, node: str, action: str) -> None:
        if self.pair.nodes[node].alive:
            self.pair.checker(node, True, action)

    @rule(node=node_ids)
    def replication_fails(self, node: str) -> None:
        if self.pair.nodes[node].alive:
            self.pair.replication_failed(node)

    @rule(node=node_ids)
    def checker_clears(self, node: str) -> None:
        if self.pair.nodes[node].alive:
            self.pair.checker(node, False)

    @invariant()
    def invariants_hold(self) -> None:
        self.check_pair()

    def check_pair(self) -> None:
        pair = self.pair
        machines = [pair.nodes[n].machine for n in NODES]
        if pair.rounds_connected >= 2 and all(machines):
            # Views are one pulse old, so two nodes may both be primary for the one
            # round in which they discover each other; never for two rounds in a row.
            both = all(m.state.is_primary for m in machines)
            assert not (both and self.both_primary_at == pair.now - pair.pulse), (
                f"two primaries while connected: {pair.states()}"
            )
            if both and self.both_primary_at != pair.now:
                self.both_primary_at = pair.now
        for n in NODES:
            node = pair.nodes[n]
            env = node.last_env
            m = node.machine
            if m is None or env is None or env.now != pair.now:
                continue
            if env.peer is None and env.witness_blocks and not m.forced_primary:
                assert not m.want_running, f"{n} serves without peer and witness"
        self.check_data()

    def check_data(self) -> None:
        pair = self.pair
        histories = [pair.nodes[n].stored_facts.generations for n in NODES]
        if compare(*histories) is Relation.DIVERGED:
            self.loss_allowed = self.loss_allowed or "split brain"
        if self.loss_allowed:
            return
        for n in NODES:
            node = pair.nodes[n]
            m = node.machine
            # Acknowledging writes, i.e. not holding them (a held primary on the far side
            # of a partition waits for the gate; it answers nobody meanwhile).
            serving = node.resource_running and node.repl in (Repl.TRACK, Repl.SYNC)
            if m is not None and m.state.is_primary and serving:
                lost = pair.acked - node.data
                assert not lost, f"{n} serves without acknowledged writes {sorted(lost)[:5]}"


TwoNodes.TestCase.settings = settings(
    max_examples=int(os.environ.get("MP_HYPOTHESIS_EXAMPLES", "300")),
    stateful_step_count=60,
    deadline=None,
)
TestTwoNodes = TwoNodes.TestCase


class TwoNodesNoWitness(TwoNodes):
    def __init__(self) -> None:
        RuleBasedStateMachine.__init__(self)
        self.pair = Pair(witness=False, defaultprim=True, preferred="node2")
        self.both_primary_at = -1.0
        self.loss_allowed = ""


TwoNodesNoWitness.TestCase.settings = settings(
    max_examples=int(os.environ.get("MP_HYPOTHESIS_EXAMPLES", "200")),
    stateful_step_count=60,
    deadline=None,
)
TestTwoNodesNoWitness = TwoNodesNoWitness.TestCase
