"""Two real HeartbeatTransports exchanging real datagrams, plus the witness probe.

Timings are small (pulse 0.05 s, timeout 0.3 s); every wait polls a condition
with a deadline instead of sleeping and asserting on timings.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from node_agent.config.model import NODE_IDS, HeartbeatNetwork, WitnessConfig
from node_agent.heartbeat.codec import encode
from node_agent.heartbeat.liveness import Liveness, Pulse
from node_agent.heartbeat.udp import HeartbeatSender, HeartbeatTransport
from node_agent.heartbeat.witness import WitnessProbe
from protos.heartbeat_pb2 import Heartbeat
from tests.conftest import require, require_binary, require_root

SECRET = b"integration-secret"
CLUSTER = "demo"
PULSE = 0.05
TIMEOUT = 0.3
ADDRESSES = {"node1": "127.0.0.1", "node2": "127.0.0.2"}
REPO = Path(__file__).resolve().parents[2]


def run(coro: Coroutine[Any, Any, None], limit: float = 30.0) -> None:
    asyncio.run(asyncio.wait_for(coro, limit))


async def eventually(cond: Callable[[], bool], what: str, limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.01)


def free_udp_port() -> int:
    """A port free on both loopback addresses (both agents bind it)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
                try:
                    b.bind(("127.0.0.2", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free UDP port")


@dataclass
class Node:
    node_id: str
    liveness: Liveness
    transport: HeartbeatTransport
    sender: HeartbeatSender
    nets: tuple[HeartbeatNetwork, ...]
    heard: list[tuple[str, Heartbeat]] = field(default_factory=list)

    def all_up(self) -> bool:
        now = time.monotonic()
        return self.liveness.peer_alive(now) and all(s.up for s in self.liveness.link_states(now))


@contextlib.asynccontextmanager
async def pair(pulse: float = PULSE) -> AsyncIterator[dict[str, Node]]:
    nets = (
        HeartbeatNetwork("lan", dict(ADDRESSES), free_udp_port()),
        HeartbeatNetwork("cross", dict(ADDRESSES), free_udp_port()),
    )
    nodes: dict[str, Node] = {}
    tasks: list[asyncio.Task[None]] = []
    try:
        for node_id in NODE_IDS:
            boot = 1000 + NODE_IDS.index(node_id)
            liveness = Liveness([n.name for n in nets], TIMEOUT, node_id, CLUSTER, boot_id=boot)
            heard: list[tuple[str, Heartbeat]] = []
            senders: list[HeartbeatSender] = []
            # As the engine does: a peer heard for the first time gets an urgent pulse
            # (the echo challenge would otherwise wait for the next pulse).
            transport = HeartbeatTransport(
                node_id, CLUSTER, SECRET, nets, liveness,
                lambda ln, hb, h=heard: h.append((ln, hb)),
                on_peer_boot=lambda s=senders: s[0].urgent(),
            )  # fmt: skip
            await transport.start()
            sender = HeartbeatSender(transport, Pulse(pulse), Heartbeat)
            senders.append(sender)
            nodes[node_id] = Node(node_id, liveness, transport, sender, nets, heard)
            tasks.append(asyncio.create_task(sender.run()))
        yield nodes
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for node in nodes.values():
            node.transport.close()


def raw_send(data: bytes, source: str, dest: tuple[str, int]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.sendto(data, dest)


def lan_port(node: Node) -> int:
    return node.nets[0].port


def test_both_nodes_see_each_other_on_both_links() -> None:
    async def main() -> None:
        async with pair() as nodes:
            await eventually(lambda: all(n.all_up() for n in nodes.values()), "both links up")
            for node in nodes.values():
                links = {link for link, _ in node.heard}
                assert links == {"lan", "cross"}
                assert all(hb.link == link for link, hb in node.heard)
                assert all(hb.node_id != node.node_id for _, hb in node.heard)
                assert node.liveness.rejected_total == 0
                latest = node.liveness.latest(time.monotonic())
                assert latest is not None and latest.cluster == CLUSTER

    run(main())


def test_urgent_sends_at_once() -> None:
    async def main() -> None:
        async with pair(pulse=30.0) as nodes:  # no periodic send during the test
            node1, node2 = nodes["node1"], nodes["node2"]
            await eventually(lambda: len(node1.heard) >= 2, "a first pulse on both links")
            await asyncio.sleep(0.2)  # the first contact's urgent pulses are over
            before = len(node1.heard)
            last = max(hb.seq for _, hb in node1.heard)
            node2.sender.urgent()
            await eventually(lambda: len(node1.heard) == before + 2, "urgent pulse", limit=5.0)
            assert [hb.seq for _, hb in node1.heard[before:]] == [last + 1, last + 1]

    run(main())


def test_forged_and_misrouted_datagrams_change_nothing() -> None:
    async def main() -> None:
        async with pair() as nodes:
            node1 = nodes["node1"]
            await eventually(node1.all_up, "node1 sees node2")
            boot = nodes["node2"].sender.boot_id
            forged = Heartbeat(
                cluster=CLUSTER, node_id="node2", boot_id=boot + 1, seq=1, link="lan"
            )
            dest = ("127.0.0.1", lan_port(node1))
            # Right source address, wrong secret: the HMAC check must drop it.
            raw_send(encode(forged, b"wrong-secret"), "127.0.0.2", dest)
            await eventually(
                lambda: node1.liveness.rejected_by_reason.get("bad hmac") == 1, "bad hmac counted"
            )
            # Right secret, wrong source address: a datagram from elsewhere is no heartbeat.
            raw_send(encode(forged, SECRET), "127.0.0.3", dest)
            await eventually(
                lambda: node1.liveness.rejected_by_reason.get("unexpected source") == 1,
                "unexpected source counted",
            )
            await asyncio.sleep(3 * PULSE)  # let later genuine heartbeats in
            assert all(hb.boot_id == boot for _, hb in node1.heard)
            view = node1.liveness.peer_view
            assert view is not None and view.boot_id == boot
            assert node1.liveness.rejected_total == 2
            assert node1.all_up()

    run(main())


def test_replayed_datagram_rejected() -> None:
    async def main() -> None:
        async with pair() as nodes:
            node1 = nodes["node1"]
            await eventually(lambda: any(ln == "lan" for ln, _ in node1.heard), "a lan heartbeat")
            link, captured = next((ln, hb) for ln, hb in node1.heard if ln == "lan")
            # Deterministic serialization: re-encoding yields the captured datagram.
            raw_send(encode(captured, SECRET), "127.0.0.2", ("127.0.0.1", lan_port(node1)))
            await eventually(
                lambda: node1.liveness.rejected_by_reason.get("replay") == 1, "replay counted"
            )
            assert sum(1 for ln, hb in node1.heard if (ln, hb) == (link, captured)) == 1
            assert node1.liveness.rejected_total == 1

    run(main())


def test_closed_link_goes_down_while_peer_stays_alive() -> None:
    async def main() -> None:
        async with pair() as nodes:
            node1, node2 = nodes["node1"], nodes["node2"]
            await eventually(lambda: node1.all_up() and node2.all_up(), "both links up")
            node1.transport.close_link("cross")

            def cross_down_everywhere() -> bool:
                now = time.monotonic()
                # The peer must stay alive on the LAN at every poll, not only at the end.
                assert node1.liveness.peer_alive(now) and node2.liveness.peer_alive(now)
                return not node1.liveness.link_up("cross", now) and not node2.liveness.link_up(
                    "cross", now
                )

            await eventually(cross_down_everywhere, "cross link down on both sides")
            now = time.monotonic()
            for node in (node1, node2):
                states = {s.name: s for s in node.liveness.link_states(now)}
                assert states["lan"].up and not states["cross"].up
                age = states["cross"].last_heard_age_s
                assert age is not None and age >= TIMEOUT
            # Sending on the remaining link never raises.
            node1.transport.send(Heartbeat(boot_id=node1.sender.boot_id, seq=10**9))

    run(main())


def test_missing_address_is_a_down_link_not_an_error() -> None:
    # Like an agent started in a namespace before its address is configured.
    async def main() -> None:
        net = HeartbeatNetwork("lan", {"node1": "10.254.254.1", "node2": "10.254.254.2"}, 7799)
        liveness = Liveness(["lan"], TIMEOUT, "node1", CLUSTER, boot_id=1)
        transport = HeartbeatTransport(
            "node1", CLUSTER, SECRET, [net], liveness, lambda ln, hb: None, rebind_interval_s=0.01
        )
        await transport.start()
        try:
            await asyncio.sleep(0.05)  # a few rebind attempts
            assert not transport.link_io()["lan"].bound
            transport.send(Heartbeat(seq=1))  # skipped, never raises
            assert transport.link_io()["lan"].sent == 0
        finally:
            transport.close()

    run(main())


def test_address_in_use_fails_start() -> None:
    async def main() -> None:
        async with pair() as nodes:
            node1 = nodes["node1"]
            twin = HeartbeatTransport(
                "node1",
                CLUSTER,
                SECRET,
                node1.nets,
                Liveness(["lan", "cross"], TIMEOUT, "node1", CLUSTER, boot_id=1),
                lambda ln, hb: None,
            )
            with pytest.raises(OSError):
                await twin.start()  # a second agent of the same node must not start

    run(main())


NETNS_SCRIPT = textwrap.dedent(
    """
    import asyncio, subprocess, time
    from node_agent.config.model import HeartbeatNetwork
    from node_agent.heartbeat.liveness import Liveness, Pulse
    from node_agent.heartbeat.udp import HeartbeatSender, HeartbeatTransport
    from protos.heartbeat_pb2 import Heartbeat

    async def main():
        net = HeartbeatNetwork("lan", {"node1": "10.77.0.1", "node2": "10.77.0.2"}, 7701)
        nodes = []
        for nid in ("node1", "node2"):
            lv = Liveness(["lan"], 0.3, nid, "demo", boot_id=1 + len(nodes))
            tr = HeartbeatTransport(
                nid, "demo", b"s", [net], lv, lambda ln, hb: None, rebind_interval_s=0.05
            )
            await tr.start()  # before the addresses exist: bound later
            sender = HeartbeatSender(tr, Pulse(0.05), Heartbeat)
            nodes.append((lv, asyncio.create_task(sender.run())))
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "addr", "add", "10.77.0.1/24", "dev", "lo"], check=True)
        subprocess.run(["ip", "addr", "add", "10.77.0.2/24", "dev", "lo"], check=True)
        deadline = time.monotonic() + 10
        while not all(lv.peer_alive(time.monotonic()) for lv, _ in nodes):
            assert time.monotonic() < deadline, "no heartbeats inside the namespace"
            await asyncio.sleep(0.01)
        print("ALIVE")

    asyncio.run(main())
    """
)


@pytest.mark.root
def test_inside_network_namespace() -> None:
    require_root()
    unshare = require_binary("unshare")
    require_binary("ip")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [unshare, "--net", sys.executable, "-c", NETNS_SCRIPT],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    require(
        "unshare failed" not in proc.stderr and "Operation not permitted" not in proc.stderr,
        f"cannot create a network namespace: {proc.stderr.strip()}",
    )
    assert proc.returncode == 0 and "ALIVE" in proc.stdout, proc.stderr


# --- witness ---------------------------------------------------------------------------------


def probe(**kwargs: Any) -> WitnessProbe:
    return WitnessProbe(WitnessConfig(interval_s=0.05, timeout_s=0.5, **kwargs))


def closed_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again on exit: connections are refused


def test_witness_tcp_listening_is_reachable() -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            witness = probe(tcp=(f"127.0.0.1:{port}",))
            assert witness.configured and not witness.reachable
            assert await witness.probe_once()
            assert witness.reachable

    run(main())


def test_witness_closed_port_is_unreachable() -> None:
    async def main() -> None:
        witness = probe(tcp=(f"127.0.0.1:{closed_tcp_port()}",))
        assert not await witness.probe_once()
        assert not witness.reachable

    run(main())


def test_witness_any_target_suffices() -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            witness = probe(tcp=(f"127.0.0.1:{closed_tcp_port()}", f"127.0.0.1:{port}"))
            assert await witness.probe_once()

    run(main())


def test_witness_ping_localhost_is_reachable() -> None:
    require_binary("ping")

    async def main() -> None:
        witness = probe(ping=("127.0.0.1",))
        assert await witness.probe_once()

    run(main())


def test_witness_run_reports_changes() -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        witness = probe(tcp=(f"127.0.0.1:{port}",))
        changes: list[bool] = []
        task = asyncio.create_task(witness.run(changes.append))
        try:
            await eventually(lambda: changes == [True], "witness reachable")
            server.close()
            await server.wait_closed()
            await eventually(lambda: changes == [True, False], "witness lost")
            assert not witness.reachable
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    run(main())


def test_witness_not_configured() -> None:
    async def main() -> None:
        witness = WitnessProbe(WitnessConfig())
        assert not witness.configured
        await asyncio.wait_for(witness.run(lambda _: None), 1.0)  # returns at once
        assert not await witness.probe_once()
        assert not witness.reachable

    run(main())
