"""The two automatons of test_machine_stateful, with every heartbeat going through history
sync, splitting and the codec (node_agent/heartbeat/): same random events, same
invariants, and one more: on every round each automaton receives exactly the view its
peer advertised that round, whole history included, though most heartbeats carry only
a summary of it. So every ``generations.compare`` / ``divergence_start`` the
automaton computes (election, split brain, resync direction, the history a resync
copies) is what it computes with whole histories."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from hypothesis import settings

from node_agent.core.env import Env, PeerView
from node_agent.engine.convert import view_from_pb, view_to_pb
from node_agent.heartbeat.codec import decode, encode
from node_agent.heartbeat.peer_modules import PeerModules
from node_agent.heartbeat.split import FEATURE_PARTS, split
from protos.heartbeat_pb2 import Heartbeat, PeerModuleView
from tests.unit.pair import NODES, Pair, SimNode
from tests.unit.test_machine_stateful import TwoNodes

SECRET = b"s"
BUDGET = 400  # small: a whole history takes several datagrams


@dataclass
class Wire:
    """One node's heartbeat state: reset by a restart of its agent."""

    boot_id: int
    peers: PeerModules
    seq: int = 0
    summaries_only: int = 0  # pulses that carried a history's summary, not the history


class SyncedPair(Pair):
    """Pair whose views reach the other automaton only through the heartbeat path."""

    def __init__(self, **kw: object) -> None:
        self.wires: dict[str, Wire] = {}
        self.sent: dict[str, set[bytes]] = {n: set() for n in NODES}  # every view sent
        super().__init__(**kw)  # type: ignore[arg-type]

    def boot(self, node_id: str, autostart: bool = True) -> None:
        old = self.wires.get(node_id)
        self.wires[node_id] = Wire((old.boot_id if old else 0) + 1, PeerModules(self.timeout))
        super().boot(node_id, autostart)

    def env(self, node_id: str) -> Env:
        """What NodeEngine.peer_view gives: the peer's latest complete view while fresh."""
        got = self.wires[node_id].peers.view("m", self.now)
        if isinstance(got, PeerModuleView):
            assert (
                got.SerializeToString(deterministic=True) in self.sent[self.peer(node_id).node_id]
            )
        peer = view_from_pb(got) if isinstance(got, PeerModuleView) else None
        return dataclasses.replace(super().env(node_id), peer=peer)

    def _pulse(self, node: SimNode, view: PeerView, peer: SimNode) -> list[Heartbeat]:
        wire = self.wires[node.node_id]
        wire.seq += 1
        msg = view_to_pb("m", view, 1)
        # The peer's boot is known: the echo challenge ran before any of this counted.
        peer_boot = self.wires[peer.node_id].boot_id
        wire.peers.outgoing(msg, peer_boot, False, self.now)
        if view.generations and not msg.generations:
            wire.summaries_only += 1
        whole = view_to_pb("m", view, 1)
        for name in ("history_length", "history_latest", "history_digest", "peer_history_digest"):
            setattr(whole, name, getattr(msg, name))
        self.sent[node.node_id].add(whole.SerializeToString(deterministic=True))
        hb = Heartbeat(cluster="c", node_id=node.node_id, boot_id=wire.boot_id, seq=wire.seq,
                       modules=[msg], features=FEATURE_PARTS)  # fmt: skip
        return split(hb, BUDGET, ["lan"])

    def deliver(self, a: SimNode, b: SimNode) -> None:
        views = {n.node_id: n.machine.view() for n in (a, b)}
        pulses = {n.node_id: self._pulse(n, views[n.node_id], p) for n, p in ((a, b), (b, a))}
        for sender, receiver in ((a, b), (b, a)):
            peers = self.wires[receiver.node_id].peers
            facts = receiver.machine.facts
            for part in pulses[sender.node_id]:
                hb = decode(encode(part, SECRET), SECRET)
                peers.receive(hb, self.now, lambda _name, f=facts: f.generations)
            got = peers.view("m", self.now)  # exactly the view the peer advertised
            assert isinstance(got, PeerModuleView), f"{receiver.node_id}: no view"
            assert view_from_pb(got) == views[sender.node_id]


class TwoNodesSynced(TwoNodes):
    def __init__(self) -> None:
        super().__init__()
        self.pair = SyncedPair(witness=True)


TwoNodesSynced.TestCase.settings = settings(
    max_examples=int(os.environ.get("MP_HYPOTHESIS_EXAMPLES", "150")),
    stateful_step_count=60,
    deadline=None,
)
TestTwoNodesSynced = TwoNodesSynced.TestCase


def test_summaries_do_the_work() -> None:
    """A failover and a rejoin: after the first exchange, heartbeats carry summaries."""
    pair = SyncedPair(witness=True)
    pair.settle()
    pair.kill("node1")
    pair.settle()
    pair.boot("node1")
    pair.settle()
    assert pair.states() in ({"node1": "SECOND", "node2": "PRIM"},
                             {"node1": "PRIM", "node2": "SECOND"})  # fmt: skip
    assert len(pair.machine("node2").facts.generations) >= 2
    assert all(w.summaries_only >= 10 for w in pair.wires.values())
