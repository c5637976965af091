"""The engine with real UDP heartbeats and real app processes, two nodes on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path

from node_agent.heartbeat.codec import encode
from protos import heartbeat_pb2 as hpb
from protos import mirrorpair_pb2 as pb
from tests.integration.engine_pair import EnginePair, cluster_config, state_of


def run(coro) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


def pid_alive(path: Path) -> bool:
    try:
        os.kill(int(path.read_text()), 0)
        return True
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return False


def test_election_swap_and_clean_stop_hand_over_at_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = EnginePair(cluster_config(tmp_path, timeout_ms=3000))
        e1, e2 = pair.start("node1"), pair.start("node2")
        try:
            await pair.wait_roles("node1", "node2", "PRIM/SECOND")
            pid1 = tmp_path / "node1/modules/web/pid"
            assert pid_alive(pid1)
            out = await e2.command("web", pb.COMMAND_SWAP, "tester")
            assert out.accepted, out.message
            await pair.wait_roles("node2", "node1", "swapped")
            assert pid_alive(tmp_path / "node2/modules/web/pid") and not pid_alive(pid1)
            # A clean agent stop hands over at once, well before the 3 s timeout.
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await pair.stop("node2")
            await pair.wait(lambda: state_of(e1)[0] == "ALONE", "node1 takes over", 2.5)
            assert loop.time() - t0 < 3.0
            facts = json.loads((tmp_path / "node1/modules/web/facts.json").read_text())
            assert facts["uptodate"] and len(facts["generations"]) >= 2
        finally:
            await pair.close()

    run(scenario())


def test_crash_of_primary_fails_over_and_it_returns_secondary(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = EnginePair(cluster_config(tmp_path))
        pair.start("node1")
        e2 = pair.start("node2")
        try:
            await pair.wait(lambda: state_of(e2) == ("SECOND", "READY"), "node2 secondary")
            await pair.crash("node1")
            await pair.wait(lambda: state_of(e2) == ("ALONE", "READY"), "node2 alone")
            assert pid_alive(tmp_path / "node2/modules/web/pid")
            pair.start("node1")
            await pair.wait_roles("node2", "node1", "node1 back as secondary")
        finally:
            await pair.close()

    run(scenario())


def test_forged_and_replayed_heartbeats_change_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        config = cluster_config(tmp_path)
        pair = EnginePair(config)
        e1, e2 = pair.start("node1"), pair.start("node2")
        try:
            await pair.wait(lambda: state_of(e2) == ("SECOND", "READY"), "settled")
            lan = config.heartbeat[0]
            forged = hpb.Heartbeat(
                cluster=config.name, node_id="node1", boot_id=2**62, seq=1, link="lan"
            )
            forged.modules.add(name="web", state=pb.STATE_WAIT, candidate=True)
            # Signed with a wrong secret, sent from node1's own address.
            data = encode(forged, b"not-the-cluster-secret")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", 0))
                for _ in range(20):
                    s.sendto(data, (lan.addresses["node2"], lan.port))
            await pair.wait(lambda: e2.status().heartbeats_rejected >= 20, "rejections counted")
            await asyncio.sleep(0.5)
            assert state_of(e1) == ("PRIM", "READY") and state_of(e2) == ("SECOND", "READY")
            lan_status = next(link for link in e2.status().links if link.name == "lan")
            assert lan_status.rejected >= 20 and lan_status.up
        finally:
            await pair.close()

    run(scenario())


def test_app_dying_is_restarted_locally_then_fails_over(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = EnginePair(cluster_config(tmp_path, maxloop=2))
        e1, _ = pair.start("node1"), pair.start("node2")
        pid1 = tmp_path / "node1/modules/web/pid"
        try:
            await pair.wait_roles("node1", "node2", "settled")
            for n in range(2):
                old = pid1.read_text()
                os.kill(int(old), 9)
                await pair.wait(
                    lambda old=old: pid1.exists() and pid1.read_text() != old and pid_alive(pid1),
                    f"local restart {n + 1}",
                    20,
                )
                assert state_of(e1)[0] == "PRIM"
            os.kill(int(pid1.read_text()), 9)
            await pair.wait_roles("node2", "node1", "failover", 20)
            restarts = e1.logs("web", 500, "", "local restart")
            assert len(restarts) == 2
            assert e1.logs("web", 500, "", "maxloop")
        finally:
            await pair.close()

    run(scenario())


def test_a_probe_in_flight_during_a_swap_does_not_fail_the_new_secondary(tmp_path: Path) -> None:
    # The check outlives the swap's stop: it answers "not running" about a resource
    # that was stopped on purpose meanwhile, and that answer must be dropped.
    slow = "touch probing; sleep 1; kill -0 $(cat pid) 2>/dev/null; rc=$?; rm -f probing; exit $rc"

    async def scenario() -> None:
        pair = EnginePair(cluster_config(tmp_path, timeout_ms=3000, check=slow))
        e1, e2 = pair.start("node1"), pair.start("node2")
        probing = tmp_path / "node1/modules/web/probing"
        try:
            await pair.wait_roles("node1", "node2", "PRIM/SECOND")
            await pair.wait(probing.exists, "a check in flight on the primary")
            out = await e2.command("web", pb.COMMAND_SWAP, "tester")
            assert out.accepted, out.message
            await pair.wait_roles("node2", "node1", "swapped")
            await pair.wait(lambda: not probing.exists(), "the probe has answered")
            await asyncio.sleep(0.5)  # its answer, had it been taken, acts at once
            assert state_of(e1) == ("SECOND", "READY")
            assert not e1.logs("web", 500, "", "checker failed")
        finally:
            await pair.close()

    run(scenario())


def test_a_stopping_agent_refuses_commands(tmp_path: Path) -> None:
    """A command that comes in while the agent stops its modules (an operator's `start`
    during `systemctl stop`) is refused, naming why: accepted, it would leave a module
    started as the agent exits."""

    async def scenario() -> None:
        pair = EnginePair(cluster_config(tmp_path))
        pair.start("node1")
        e2 = pair.start("node2")
        try:
            await pair.wait_roles("node1", "node2", "PRIM/SECOND")
            stopping = asyncio.get_running_loop().create_task(pair.stop("node2"))
            await pair.wait(lambda: not e2.serving, "node2 stopping")
            out = await e2.command("web", pb.COMMAND_START, "tester")
            assert not out.accepted and out.message == "the agent of node2 is stopping", out
            await stopping
            assert state_of(e2)[0] == "STOP"
        finally:
            await pair.close()

    run(scenario())
