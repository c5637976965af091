"""An in-memory two-node cluster of module automatons (DESIGN: two-node logic is
tested first with an in-memory transport pair). Time is simulated; heartbeats
are delivered on the links that are up; resources and resync complete at the
next round, like a fast driver would report them."""

from __future__ import annotations

from dataclasses import dataclass, field

from node_agent.core.env import Env, PeerView
from node_agent.core.facts import Facts
from node_agent.core.machine import ModuleMachine, Policy

NODES = ("node1", "node2")
LINKS = ("lan", "direct")


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
        if autostart:
            node.machine.command("start", "test", self.env(node_id))
            self._persist(node)

    def kill(self, node_id: str) -> None:
        """SIGKILL of the agent and everything it ran on that node."""
        node = self.nodes[node_id]
        node.machine = None
        node.resource_running = False

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
            va, vb = a.machine.view(), b.machine.view()
            a.peer_view, a.last_heard = vb, self.now
            b.peer_view, b.last_heard = va, self.now
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
            m.resource_started(True, "", env)
        elif not m.want_running and (node.resource_running or m.resource_up):
            node.resource_running = False
            m.resource_stopped(True, "", env)
        if m.resync_wanted:
            m.resync_done(env)
        self._persist(node)

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
        m = self.machine(node_id)
        env = self.nodes[node_id].last_env = self.env(node_id)
        m.replication_failed("injected", env)
        self._persist(self.nodes[node_id])

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
