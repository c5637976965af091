"""A node engine's heartbeats: the transport on every heartbeat network, the sender's
pulse, what goes out (each module's view), what comes in (the peer's), and the view
of the peer that each module's automaton steps with."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

from node_agent.config.model import ClusterConfig, other_node
from node_agent.core.env import UNCONFIGURED, PeerView
from node_agent.engine.boot_id import next_boot_id
from node_agent.engine.convert import view_from_pb, view_to_pb
from node_agent.engine.logbook import LogBook
from node_agent.engine.module_driver import ModuleDriver
from node_agent.heartbeat.liveness import MAX_LEAVING_S, Liveness, Pulse
from node_agent.heartbeat.peer_modules import ABSENT, PeerModules
from node_agent.heartbeat.udp import HeartbeatSender, HeartbeatTransport
from node_agent.heartbeat.witness import WitnessProbe
from protos import heartbeat_pb2 as hpb


class Heartbeats:
    def __init__(
        self,
        config: Callable[[], ClusterConfig],
        node_id: str,
        data_dir: Path,
        logbook: LogBook,
        witness: WitnessProbe,
        modules: Callable[[], Mapping[str, ModuleDriver]],
        wake: Callable[[], None],
    ) -> None:
        # Read at each use (config, modules): a new configuration version replaces them.
        self._config, self._modules = config, modules
        self.peer_id = other_node(node_id)
        self.logbook, self.witness, self._wake = logbook, witness, wake
        cfg = config()
        self.liveness = Liveness(
            [n.name for n in cfg.heartbeat], cfg.timeout_s, node_id, cfg.name,
            boot_id=next_boot_id(data_dir / "boot_id"),
        )  # fmt: skip
        self.transport = HeartbeatTransport(
            node_id, cfg.name, cfg.secret, cfg.heartbeat, self.liveness,
            self._on_heartbeat, on_peer_boot=lambda: self.sender.urgent(),
        )  # fmt: skip
        self.sender = HeartbeatSender(self.transport, Pulse(cfg.pulse_s), self._build_heartbeat)
        self._peer_left = 0  # the peer boot whose agent said it leaves its modules running
        self.peers = PeerModules(cfg.timeout_s, cfg.pulse_s)  # the peer's modules

    def peer_view(self, module: str) -> PeerView | None:
        now = time.monotonic()
        if self.liveness.latest(now) is None:
            return None
        msg = self.peers.view(module, self.liveness.views_at(now))  # a leaving agent's stand
        if msg is ABSENT:
            return UNCONFIGURED
        return None if msg is None else view_from_pb(msg)

    def _build_heartbeat(self) -> hpb.Heartbeat:
        now, boot, legacy = time.monotonic(), self.liveness.peer_boot_id, self.liveness.legacy_peer
        version = self._config().version
        modules = []
        for name, d in self._modules().items():
            msg = view_to_pb(name, d.machine.view(), version)
            self.peers.outgoing(msg, boot, legacy, now)  # whole history only if needed
            modules.append(msg)
        return hpb.Heartbeat(
            modules=modules,
            witness_reachable=self.witness.reachable,
            config_version=version,
        )

    def _on_heartbeat(self, _link: str, hb: hpb.Heartbeat) -> None:
        if hb.leaving_ms and hb.boot_id != self._peer_left:  # once, not once per link
            self._peer_left = hb.boot_id
            wait = f"{min(hb.leaving_ms / 1000, MAX_LEAVING_S):g} s"  # what it is granted
            self.logbook.add("INFO", f"the agent of {self.peer_id} exits leaving its modules "
                             f"running: {self.peer_id} counts as alive for up to {wait}, "
                             "until its next agent is heard")  # fmt: skip
        # Only wake the decision loop when the peer's facts changed, not every pulse.
        if self.peers.receive(hb, time.monotonic(), self._own_history):
            self._wake()

    def _own_history(self, module: str) -> tuple[str, ...] | None:
        d = self._modules().get(module)
        return d.machine.facts.generations if d is not None else None
