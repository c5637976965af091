"""An in-memory two-node cluster of module automatons (DESIGN: two-node logic is
tested first with an in-memory transport pair). Time is simulated; heartbeats
are delivered on the links that are up; resources and resync complete at the
next round, like a fast driver would report them.

It also models the data (``SimNode.data``: the ids of the writes on that node's
disk) and the primary's replicator as docs/replication.md describes it, so that
"never lose an acknowledged write" can be checked against the real automaton and
the real write gate: a serving node writes one record per round; while the pair
is synchronous (``Repl.SYNC``) it lands on both nodes before it is acknowledged;
when that stream breaks the replicator holds the writes (``HELD``) under a fresh
token and tells the automaton (``replication_failed``); ``write_gate`` then opens
(acknowledged, tracked for the resync), fences (never acknowledged) or keeps
holding. A resync copies the primary's data to the secondary and binds the pair
again."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from node_agent.core.env import Env, PeerView
from node_agent.core.facts import Facts
from node_agent.core.machine import ModuleMachine, Policy
from node_agent.core.states import Readiness, State
from node_agent.core.write_gate import Gate, write_gate

NODES = ("node1", "node2")
LINKS = ("lan", "direct")


class Repl(Enum):
    NONE = "none"  # not primary here: nothing mounted
    TRACK = "track"  # no secondary that may be current: acknowledged locally, tracked
    CONNECTING = "connecting"  # SYNC once the stream is up; writes wait meanwhile
    SYNC = "sync"  # the peer may hold a current copy: written there before the ack
    HELD = "held"  # SYNC broke: writes wait for the gate
    FENCED = "fenced"  # the gate fenced: every write fails


@dataclass
class SimNode:
    node_id: str
    machine: ModuleMachine | None
    stored_facts: Facts = field(default_factory=Facts)
    peer_view: PeerView | None = None
    last_heard: float = -1e9
    witness_ok: bool = True
    witness_answering: bool = True
    resource_running: bool = False
    seen_restart_token: int = 0
    boots: int = 0
    last_env: Env | None = None
    data: set[int] = field(default_factory=set)  # on its disk: survives kill and boot
    repl: Repl = Repl.NONE
    hold: str = ""  # the outdate token of the break being held
    held: list[int] = field(default_factory=list)  # written locally, waiting for the gate
    connect_by: float = 0.0  # CONNECTING gives up (breaks) at this time

    @property
    def alive(self) -> bool:
        return self.machine is not None


class Pair:
    def __init__(
        self,
        witness: bool = False,
        timeout: float = 3.0,
        pulse: float = 0.5,
        preferred: str = "node1",
        maxloop: int = 2,
        defaultprim: bool = False,
    ) -> None:
        self.now = 1_000_000.0
        self.timeout = timeout
        self.pulse = pulse
        self.witness = witness
        self.links_up = set(LINKS)
        self.rounds_connected = 0
        self.policy_kw = dict(
            preferred=preferred,
            maxloop=maxloop,
            loop_interval_s=60.0,
            defaultprim=defaultprim,
            detection_timeout_s=timeout,
            handover_timeout_s=10.0,
        )
        self.nodes = {n: SimNode(n, None) for n in NODES}
        self.acked: set[int] = set()  # writes the application saw acknowledged
        self.writes = 0
        self.breaks = 0
        for n in NODES:
            self.boot(n)

    # ----- lifecycle -------------------------------------------------------------------
    def boot(self, node_id: str, autostart: bool = True) -> None:
        node = self.nodes[node_id]
        node.boots += 1
        policy = Policy(module="m", node_id=node_id, **self.policy_kw)
        node.machine = ModuleMachine(
            policy, node.stored_facts, self.now, nonce_seed=node.boots << 16
        )
        node.seen_restart_token = 0
        node.peer_view = None
        node.last_heard = -1e9
        node.repl, node.held, node.hold = Repl.NONE, [], ""
        if autostart:
            node.machine.command("start", "test", self.env(node_id))
            self._persist(node)

    def kill(self, node_id: str) -> None:
        """SIGKILL of the agent and everything it ran on that node."""
        node = self.nodes[node_id]
        node.machine = None
        node.resource_running = False
        node.repl, node.held, node.hold = Repl.NONE, [], ""  # held writes: never acked

    def peer(self, node_id: str) -> SimNode:
        return self.nodes[NODES[1] if node_id == NODES[0] else NODES[0]]

    # ----- environment -----------------------------------------------------------------
    def env(self, node_id: str) -> Env:
        node = self.nodes[node_id]
        fresh = self.now - node.last_heard < self.timeout
        return Env(
            now=self.now,
            peer=node.peer_view if fresh else None,
            witness_configured=self.witness,
            witness_ok=node.witness_ok,
            witness_answering=node.witness_answering,
        )

    def machine(self, node_id: str) -> ModuleMachine:
        m = self.nodes[node_id].machine
        assert m is not None, f"{node_id} is down"
        return m

    # ----- one pulse ---------------------------------------------------------------------
    def round(self) -> None:
        self.now += self.pulse
        a, b = (self.nodes[n] for n in NODES)
        connected = bool(self.links_up) and a.alive and b.alive
        if connected:
            self.deliver(a, b)
            self.rounds_connected += 1
        else:
            self.rounds_connected = 0
        for node in (a, b):
            if node.machine is None:
                continue
            env = self.env(node.node_id)
            node.last_env = env
            node.machine.step(env)
            self._persist(node)
            self._drive(node, env)
        for node in (a, b):
            if node.machine is not None:
                self._replicate(node)

    def deliver(self, a: SimNode, b: SimNode) -> None:
        """One heartbeat each way: each node now knows the other's current view."""
        va, vb = a.machine.view(), b.machine.view()
        a.peer_view, a.last_heard = vb, self.now
        b.peer_view, b.last_heard = va, self.now

    def _persist(self, node: SimNode) -> None:
        m = node.machine
        if m is not None and m.facts_dirty:
            node.stored_facts = m.facts
            m.facts_dirty = False

    def _drive(self, node: SimNode, env: Env) -> None:
        """A driver that always succeeds at once (failures are injected separately)."""
        m = node.machine
        assert m is not None
        if m.restart_token != node.seen_restart_token:
            node.seen_restart_token = m.restart_token
            node.resource_running = False
        if m.want_running and not node.resource_running:
            node.resource_running = True
            self._mount(node)
            m.resource_started(True, "", env)
        elif not m.want_running and (node.resource_running or m.resource_up):
            node.resource_running = False
            self._gate(node)  # the driver re-evaluates the gate after every step
            node.held, node.repl = [], Repl.NONE  # unmounted: fenced writes never acked
            m.resource_stopped(True, "", env)
        if m.resync_wanted and self._resync_from(node):
            m.resync_done(env)
        self._persist(node)
        self._gate(node)

    # ----- the replicator model ----------------------------------------------------------
    def _linked(self, node: SimNode) -> SimNode | None:
        """The peer, if a replication stream to it can be up."""
        peer = self.peer(node.node_id)
        if not self.links_up or peer.machine is None or peer.machine.state is not State.SECOND:
            return None
        return peer

    def _mount(self, node: SimNode) -> None:
        """become_primary: PRIM (a swap) means the peer may be current: synchronous from
        the first write, or held at once if the copies differ (the bitmap is not empty)."""
        m = node.machine
        assert m is not None
        if node.repl is not Repl.NONE:
            return  # mounted already (a local restart of the resource)
        if m.state is not State.PRIM:
            node.repl = Repl.TRACK
            return
        node.repl, node.connect_by = Repl.CONNECTING, self.now + self.timeout

    def _resync_from(self, sec: SimNode) -> bool:
        """A resync of ``sec`` by its primary, done at once; the pair is synchronous after."""
        prim = self.peer(sec.node_id)
        if not self.links_up or prim.machine is None or not prim.machine.state.is_primary:
            return False
        if prim.repl is not Repl.TRACK:
            return False  # a synchronous pair breaks (and holds) first; held: no pairing
        sec.data = set(prim.data)
        prim.repl = Repl.SYNC  # bound before resync-done is sent
        return True

    def break_stream(self, node_id: str, requested: bool = False) -> None:
        """The synchronous stream of ``node_id`` broke (lost, timed out, or dropped;
        ``requested``: dropped because the secondary asked for a full resync)."""
        node = self.nodes[node_id]
        m = node.machine
        if m is None or node.repl not in (Repl.SYNC, Repl.CONNECTING):
            return
        self.breaks += 1
        node.repl, node.hold = Repl.HELD, f"{node_id}-break-{self.breaks}"
        env = node.last_env = self.env(node_id)
        m.replication_failed("injected", env, node.hold, requested)
        self._persist(node)
        self._gate(node)

    def _gate(self, node: SimNode) -> None:
        m = node.machine
        if m is None or node.repl is not Repl.HELD:
            return
        gate = write_gate(m, self.env(node.node_id), node.hold)
        if gate is Gate.OPEN:
            self.acked.update(node.held)
            node.held, node.repl = [], Repl.TRACK
        elif gate is Gate.FENCE:
            node.held, node.repl = [], Repl.FENCED

    def _replicate(self, node: SimNode) -> None:
        """One application write on a serving node, through its replicator."""
        m = node.machine
        assert m is not None
        peer = self._linked(node)
        ready = peer is not None and peer.machine.readiness is Readiness.READY
        if node.repl is Repl.CONNECTING and ready and peer.data == node.data - set(node.held):
            peer.data.update(node.held)  # the stream is up: the waiting writes go out
            self.acked.update(node.held)
            node.held, node.repl = [], Repl.SYNC
        elif node.repl is Repl.CONNECTING and ready:
            self.break_stream(node.node_id)  # the record does not match: no direct pairing
        elif node.repl is Repl.CONNECTING and self.now > node.connect_by:
            self.break_stream(node.node_id)
        elif node.repl is Repl.SYNC and not ready:
            self.break_stream(node.node_id, requested=peer is not None)
        self._gate(node)
        if not (node.resource_running and m.want_running) or node.repl is Repl.FENCED:
            return
        self.writes += 1
        w = self.writes
        node.data.add(w)
        if node.repl is Repl.SYNC:
            self.peer(node.node_id).data.add(w)
            self.acked.add(w)
        elif node.repl is Repl.TRACK:
            self.acked.add(w)
        else:  # CONNECTING or HELD
            node.held.append(w)

    def settle(self, rounds: int = 20) -> None:
        for _ in range(rounds):
            self.round()

    def command(self, node_id: str, name: str, fullsync: bool = False):
        m = self.machine(node_id)
        env = self.nodes[node_id].last_env = self.env(node_id)
        out = m.command(name, "tester", env, fullsync)
        self._persist(self.nodes[node_id])
        return out

    def replication_failed(self, node_id: str) -> None:
        """The stream of a synchronous primary fails (nothing happens otherwise)."""
        self.break_stream(node_id)

    def checker(self, node_id: str, failed: bool, action: str = "restart") -> None:
        m = self.machine(node_id)
        env = self.nodes[node_id].last_env = self.env(node_id)
        if failed:
            m.checker_failed(action, "injected", env)
        else:
            m.checker_cleared(env)
        self._persist(self.nodes[node_id])

    def states(self) -> dict[str, str]:
        return {
            n: (self.nodes[n].machine.state.name if self.nodes[n].machine else "DOWN")
            for n in NODES
        }
