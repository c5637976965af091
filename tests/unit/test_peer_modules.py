"""Two nodes exchanging split pulses with history sync through the real codec,
Liveness and PeerModules, over two lossy, reordering links (hypothesis, stateful).

Histories change as the automaton changes them (a new generation, a resync copying the
peer's, a fork), nodes restart, modules come and go. Checked at every step:
- every view a node acts on is exactly a view the peer sent, whole history included:
  never a cut, stale-mixed or invented history, so ``generations.compare`` and
  ``divergence_start`` answer as with whole histories;
- a module is ABSENT only if a pulse of the peer did not have it;
- after a few lossless exchanges each node sees the peer's current views, and the
  pulses after that carry no history at all (the datagrams do not grow with it).
"""

from __future__ import annotations

import random

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from node_agent.core import generations as gens
from node_agent.core.env import PeerView
from node_agent.core.states import Readiness, State
from node_agent.engine.convert import view_to_pb
from node_agent.heartbeat import history_sync as hs
from node_agent.heartbeat.codec import decode, encode
from node_agent.heartbeat.liveness import Liveness
from node_agent.heartbeat.peer_modules import ABSENT, PeerModules
from node_agent.heartbeat.split import FEATURE_PARTS, split
from protos.heartbeat_pb2 import Heartbeat, PeerModuleView

SECRET = b"s"
LINKS = ["lan", "direct"]
TIMEOUT, PULSE = 3.0, 0.5
BUDGET = 500  # small: whole histories are cut in chunks, pulses in several parts
NAMES = ["web", "db", "m" * 64]


class Node:
    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.histories: dict[str, tuple[str, ...]] = {n: () for n in NAMES[:2]}
        self.flags: dict[str, bool] = {}
        self.boot_id = 0
        self.sent: dict[str, set[bytes]] = {}  # whole views ever sent, per module
        self.lacked: set[str] = set()  # modules some pulse of it did not have
        self.history_sent = 0  # generations carried by the last pulse
        self.restart()

    def restart(self) -> None:
        self.boot_id += 1000
        self.seq = 0
        self.liveness = Liveness(LINKS, TIMEOUT, self.node_id, "c", boot_id=self.boot_id)
        self.peers = PeerModules(TIMEOUT)

    def whole(self, name: str) -> PeerView:
        return PeerView(State.SECOND, Readiness.READY, True, self.histories[name],
                        handover=self.flags.get(name, False))  # fmt: skip

    def pulse(self, now: float) -> list[Heartbeat]:
        self.seq += 1
        modules = []
        for name in sorted(self.histories):
            msg = view_to_pb(name, self.whole(name), 1)
            lv = self.liveness
            self.peers.outgoing(msg, lv.peer_boot_id, lv.legacy_peer, now)
            whole = PeerModuleView()
            whole.CopyFrom(msg)
            del whole.generations[:]
            whole.generations.extend(self.histories[name])
            self.sent.setdefault(name, set()).add(whole.SerializeToString(deterministic=True))
            modules.append(msg)
        self.history_sent = sum(len(m.generations) for m in modules)
        self.lacked.update(set(NAMES) - set(self.histories))
        hb = Heartbeat(cluster="c", node_id=self.node_id, boot_id=self.boot_id, seq=self.seq,
                       modules=modules, echo_boot_id=self.liveness.peer_boot_id,
                       features=FEATURE_PARTS)  # fmt: skip
        return split(hb, BUDGET, LINKS)

    def deliver(self, part: Heartbeat, link: str, now: float) -> None:
        part.link = link
        hb = decode(encode(part, SECRET), SECRET)
        if self.liveness.accept(link, hb, now) is None:
            self.peers.receive(hb, now, self.histories.get)


class PairOverUdp(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.nodes = {"node1": Node("node1"), "node2": Node("node2")}
        self.now = 100.0
        self.next_id = 0

    @initialize(length=st.integers(0, gens.MAX_HISTORY))
    def common_past(self, length: int) -> None:
        """Both nodes start from one long history: whole ones need several datagrams."""
        past = tuple(gens.new_generation_id(1e9 - i, "node1", i) for i in range(length, 0, -1))
        for node in self.nodes.values():
            node.histories = dict.fromkeys(node.histories, past)

    def other(self, node: str) -> Node:
        return self.nodes["node2" if node == "node1" else "node1"]

    def send(self, frm: str, loss: float, rnd: random.Random | None) -> None:
        self.now += PULSE / 2
        sender, receiver = self.nodes[frm], self.other(frm)
        datagrams = [(p, link) for p in sender.pulse(self.now) for link in LINKS]
        if rnd is not None:
            rnd.shuffle(datagrams)  # reordered, within and across links
            datagrams = [d for d in datagrams if rnd.random() >= loss]
        for part, link in datagrams:
            copy = Heartbeat()
            copy.CopyFrom(part)
            receiver.deliver(copy, link, self.now)

    @rule(frm=st.sampled_from(["node1", "node2"]), loss=st.sampled_from([0.0, 0.3, 0.8]),
          rnd=st.randoms(use_true_random=False))  # fmt: skip
    def pulse(self, frm: str, loss: float, rnd: random.Random) -> None:
        self.send(frm, loss, rnd)

    @rule(
        node=st.sampled_from(["node1", "node2"]),
        name=st.sampled_from(NAMES),
        how=st.sampled_from(["new generation", "resync", "fork", "flag", "add", "remove"]),
    )
    def change(self, node: str, name: str, how: str) -> None:
        me, peer = self.nodes[node], self.other(node)
        if how == "add":
            me.histories.setdefault(name, peer.histories.get(name, ()))
        elif name not in me.histories:
            return
        elif how == "remove":
            del me.histories[name]
        elif how == "new generation":
            self.next_id += 1
            gen = gens.new_generation_id(1e9 + self.next_id, node, self.next_id)
            me.histories[name] = gens.append(me.histories[name], gen)
        elif how == "resync":  # a secondary copies its primary's history
            me.histories[name] = peer.histories.get(name, ())
        elif how == "fork":  # a history the peer never saw (drop the newest ids)
            me.histories[name] = me.histories[name][:-2]
        else:
            me.flags[name] = not me.flags.get(name, False)

    @rule(node=st.sampled_from(["node1", "node2"]))
    def restart(self, node: str) -> None:
        self.nodes[node].restart()

    @rule(gap=st.floats(0, 2 * TIMEOUT))
    def silence(self, gap: float) -> None:
        self.now += gap

    @rule()
    def settle(self) -> None:
        """Lossless exchanges: both sides converge, then pulses carry no history."""
        for _ in range(4):  # a restarted node needs two round trips (the echo challenge)
            self.send("node1", 0.0, None)
            self.send("node2", 0.0, None)
        for node in self.nodes.values():
            peer = self.other(node.node_id)
            for name in NAMES:
                got = node.peers.view(name, self.now)
                if name not in peer.histories:
                    assert got is ABSENT
                    continue
                if name not in node.histories:
                    continue  # no history is sent for a module the receiver lacks
                assert isinstance(got, PeerModuleView)
                assert tuple(got.generations) == peer.histories[name]
                assert got.handover == peer.flags.get(name, False)
        for frm in ("node1", "node2"):
            self.send(frm, 0.0, None)
            assert self.nodes[frm].history_sent == 0

    @invariant()
    def views_are_views_the_peer_sent(self) -> None:
        for node in self.nodes.values():
            peer = self.other(node.node_id)
            for name in NAMES:
                got = node.peers.view(name, self.now)
                if got is None:
                    continue
                if got is ABSENT:
                    assert name in peer.lacked  # a recent complete pulse did not have it
                    continue
                assert isinstance(got, PeerModuleView)
                # Exactly a view the peer sent, history and all: every relation the
                # automaton computes from it is the whole-history one.
                assert got.SerializeToString(deterministic=True) in peer.sent.get(name, set())


PairOverUdp.TestCase.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)
TestPairOverUdp = PairOverUdp.TestCase


def _view(name: str, history: tuple[str, ...]) -> PeerModuleView:
    return view_to_pb(name, PeerView(State.PRIM, Readiness.READY, True, history), 1)


HISTORY = tuple(gens.new_generation_id(1e9 + i, "node1", i) for i in range(5))


def test_an_older_peer_gets_and_gives_whole_histories() -> None:
    """Compatibility: a peer without FEATURE_PARTS gets every history whole (it would read
    a summary as an empty history), and its views (no summary, no parts) are whole."""
    peers = PeerModules(TIMEOUT, PULSE)
    for _ in range(3):
        msg = _view("web", HISTORY)
        peers.outgoing(msg, peer_boot=7, legacy=True, now=1.0)
        assert tuple(msg.generations) == HISTORY
    old = Heartbeat(cluster="c", node_id="node2", boot_id=7, seq=1, modules=[_view("db", HISTORY)])
    assert peers.receive(old, 1.0, lambda _name: None)
    got = peers.view("db", 1.0)
    assert isinstance(got, PeerModuleView) and tuple(got.generations) == HISTORY
    assert peers.view("web", 1.0) is ABSENT  # that one pulse was whole: no "web" there


def test_whole_history_at_most_once_per_pulse_per_peer_boot() -> None:
    peers = PeerModules(TIMEOUT, PULSE)

    def carries(now: float, boot: int = 7) -> bool:
        msg = _view("web", HISTORY)
        peers.outgoing(msg, peer_boot=boot, legacy=False, now=now)
        return bool(msg.generations)

    assert not carries(1.0, boot=0)  # the peer never heard: nothing we send counts there
    assert carries(1.0)  # what the peer holds is unknown: whole
    assert not carries(1.1)  # an urgent pulse right after: the ack is on its way
    assert carries(1.0 + PULSE)  # no ack a pulse later: again
    assert carries(1.6, boot=8)  # the peer restarted: it holds nothing
    # The peer says it holds our history: a summary from now on.
    ack = _view("web", ())
    ack.history_digest, ack.peer_history_digest = hs.digest(()), hs.digest(HISTORY)
    peers.receive(Heartbeat(boot_id=8, seq=1, parts=1, modules=[ack]), 2.0, lambda _n: None)
    assert not carries(5.0, boot=8)
