"""A pulse of 64 modules over two real HeartbeatTransports on loopback: split into parts
on both links, each datagram within the budget, joined back into every module's view.
Pulse 0.05 s; every wait polls a condition with a deadline."""

from __future__ import annotations

import asyncio
import time

from node_agent.config.model import HeartbeatNetwork
from node_agent.core import generations as gens
from node_agent.core.env import PeerView
from node_agent.core.states import Readiness, State
from node_agent.engine.convert import view_to_pb
from node_agent.heartbeat.liveness import Liveness, Pulse
from node_agent.heartbeat.peer_modules import PeerModules
from node_agent.heartbeat.split import BUDGET
from node_agent.heartbeat.udp import HeartbeatSender, HeartbeatTransport
from protos.heartbeat_pb2 import Heartbeat, PeerModuleView
from tests.integration.test_heartbeat_udp import (
    ADDRESSES,
    CLUSTER,
    SECRET,
    TIMEOUT,
    eventually,
    free_udp_port,
    run,
)

NAMES = [f"m{i:02d}-" + "x" * 60 for i in range(64)]
HISTORY = tuple(gens.new_generation_id(1_700_000_000 + i, "node2", i) for i in range(32))


def test_a_pulse_of_64_modules_arrives_in_parts_on_both_links() -> None:
    async def main() -> None:
        nets = [HeartbeatNetwork(n, dict(ADDRESSES), free_udp_port()) for n in ("lan", "cross")]
        lv = {n: Liveness(["lan", "cross"], TIMEOUT, n, CLUSTER, boot_id=b)
              for n, b in (("node1", 11), ("node2", 22))}  # fmt: skip
        peers = {n: PeerModules(TIMEOUT, 0.05) for n in lv}
        heard: list[tuple[str, Heartbeat]] = []

        def on_heartbeat(link: str, hb: Heartbeat) -> None:
            heard.append((link, hb))
            peers["node1"].receive(hb, time.monotonic(), lambda _name: None)

        def build() -> Heartbeat:  # node2's 64 modules, through history sync
            view = PeerView(State.SECOND, Readiness.READY, True, HISTORY)
            modules = [view_to_pb(n, view, 1) for n in NAMES]
            for msg in modules:
                peers["node2"].outgoing(msg, lv["node2"].peer_boot_id, False, time.monotonic())
            return Heartbeat(modules=modules)

        t1 = HeartbeatTransport("node1", CLUSTER, SECRET, nets, lv["node1"], on_heartbeat)
        t2 = HeartbeatTransport("node2", CLUSTER, SECRET, nets, lv["node2"], lambda ln, hb: None)
        tasks = []
        try:
            for transport, build_fn in ((t1, Heartbeat), (t2, build)):
                await transport.start()
                sender = HeartbeatSender(transport, Pulse(0.05), build_fn)
                tasks.append(asyncio.create_task(sender.run()))

            def all_views() -> bool:
                now = time.monotonic()
                got = [peers["node1"].view(n, now) for n in NAMES]
                return all(isinstance(v, PeerModuleView) for v in got)

            await eventually(all_views, "node2's 64 views complete at node1")
            now = time.monotonic()
            for name in NAMES:
                view = peers["node1"].view(name, now)
                assert isinstance(view, PeerModuleView) and tuple(view.generations) == HISTORY
            parts = {hb.parts for _, hb in heard}
            assert min(parts) > 1 and {link for link, _ in heard} == {"lan", "cross"}
            io = t2.link_io()
            assert all(0 < x.largest <= BUDGET for x in io.values()), io
            assert lv["node1"].rejected_total == 0
            assert all(s.up for s in lv["node1"].link_states(now))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            t1.close()
            t2.close()

    run(main())
