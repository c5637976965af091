"""The `mirrorpair` CLI and the agent API against two REAL agents on this machine
(tests/integration/agents.py; no root needed)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from protos import mirrorpair_pb2 as pb
from protos import mirrorpair_pb2_grpc as pb_grpc
from protos.security.ca import create_ca, issue_certificate
from protos.security.credentials import (
    aio_secure_channel,
    channel_credentials,
    secure_channel,
    server_name,
)
from tests.integration.agents import LocalCluster

OTHER = {"node1": "node2", "node2": "node1"}


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One settled cluster for the tests that only look (no commands)."""
    with LocalCluster(tmp_path_factory.mktemp("shared")) as lc:
        lc.wait_settled("web")
        yield lc


@pytest.fixture
def lc(tmp_path: Path) -> Iterator[LocalCluster]:
    """A fresh cluster for tests that change states."""
    with LocalCluster(tmp_path / "cluster") as cluster:
        cluster.wait_settled("web")
        yield cluster


def page(lc: LocalCluster) -> str:
    with urllib.request.urlopen(lc.cluster.url("web"), timeout=5) as r:
        return r.read().decode()


# ----- looking ---------------------------------------------------------------------------


def test_status_json_shows_both_nodes(shared: LocalCluster) -> None:
    rc, out, err = shared.cli("status", "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["cluster"] == "demo" and doc["modules"] == ["web"]
    states = set()
    for node in ("node1", "node2"):
        entry = doc["nodes"][node]
        assert entry["reachable"] and entry["error"] == "", entry
        assert entry["address"] == shared.cluster.api[node]
        assert entry["status"]["node_id"] == node and entry["status"]["peer_alive"]
        (web,) = entry["status"]["modules"]
        states.add((web["name"], web["state"], web["readiness"]))
    assert states == {("web", "PRIM", "READY"), ("web", "SECOND", "READY")}  # plain values
    links = doc["nodes"]["node1"]["status"]["links"]
    assert all(isinstance(link["received"], int) and link["received"] > 0 for link in links)


def test_status_text_table(shared: LocalCluster) -> None:
    rc, out, _ = shared.cli("status")
    assert rc == 0
    assert "Cluster demo" in out and "Module web  (no VIP)" in out
    assert "lan up, direct up" in out
    module_table = out.split("Module web", 1)[1]
    rows = [line.split() for line in module_table.splitlines() if line.startswith("  node")]
    assert sorted(r[1] for r in rows) == ["PRIM", "SECOND"], out
    links = out.split("Heartbeat links", 1)[1].split("Module web", 1)[0]
    rows = [line.split() for line in links.splitlines() if line.startswith("  node")]
    assert sorted((r[0], r[1], r[2]) for r in rows) == [
        (node, link, "up") for node in ("node1", "node2") for link in ("direct", "lan")
    ], out


def test_state_exit_codes_match_each_node(shared: LocalCluster) -> None:
    primary, secondary = shared.wait_settled("web")
    assert shared.cli("state", "web", "--node", primary)[:2] == (3, "PRIM\n")
    assert shared.cli("state", "web", "--node", secondary)[:2] == (4, "SECOND\n")
    # Global --node (this machine's node) works too; both demo nodes are local here.
    assert shared.cli("--node", primary, "state", "web")[0] == 3
    rc, _, err = shared.cli("state", "nosuch", "--node", "node1")
    assert rc == 11 and "unknown module 'nosuch'" in err


def test_state_without_node_on_a_shared_machine_is_a_setup_error(shared: LocalCluster) -> None:
    rc, _, err = shared.cli("state", "web")
    assert rc == 12 and "give --node" in err
    assert shared.cli("state")[0] == 16  # usage error: never 2 (= ALONE)


def test_log_merges_both_nodes(shared: LocalCluster) -> None:
    rc, out, err = shared.cli("log", "web", "--limit", "500")
    assert rc == 0, err
    lines = out.splitlines()
    assert any(" node1 " in line for line in lines) and any(" node2 " in line for line in lines)
    stamps = [line[:23] for line in lines]  # "YYYY-mm-dd HH:MM:SS.mmm"
    assert stamps == sorted(stamps)  # merged by time
    assert shared.cli("log", "nosuch")[0] == 11


def test_get_config_never_returns_the_secret(shared: LocalCluster) -> None:
    secret = tomllib.loads(shared.cluster.config_path.read_text())["cluster"]["secret"]
    reply = shared.client("node1").config()
    assert secret not in reply.toml
    assert 'secret = "***"' in reply.toml
    assert reply.path == str(shared.cluster.config_path) and reply.version == 1


def _channel(lc: LocalCluster, node: str) -> grpc.Channel:
    c = lc.cluster
    creds = channel_credentials(c.ca, c.admin_cert, c.admin_key)
    return secure_channel(c.api[node], creds, server_name(node))


def test_health_is_serving_over_mtls(shared: LocalCluster) -> None:
    with _channel(shared, "node2") as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for service in ("", "mirrorpair.v1.Agent"):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    # Without a client certificate even the health check is refused.
    anon = secure_channel(
        shared.cluster.api["node2"], channel_credentials(shared.cluster.ca), server_name("node2")
    )
    with anon, pytest.raises(grpc.RpcError) as info:
        health_pb2_grpc.HealthStub(anon).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_reflection_lists_the_services(shared: LocalCluster) -> None:
    with _channel(shared, "node1") as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        (reply,) = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    names = {s.name for s in reply.list_services_response.service}
    assert {"mirrorpair.v1.Agent", "grpc.health.v1.Health"} <= names


def test_watch_stream_from_a_real_agent(shared: LocalCluster) -> None:
    async def scenario() -> None:
        c = shared.cluster
        creds = channel_credentials(c.ca, c.admin_cert, c.admin_key)
        async with aio_secure_channel(c.api["node1"], creds, server_name("node1")) as ch:
            call = pb_grpc.AgentStub(ch).WatchStatus(pb.WatchRequest(keepalive_s=0.3))
            events = [await asyncio.wait_for(call.read(), 5) for _ in range(3)]
            call.cancel()
        assert [e.seq for e in events] == [1, 2, 3]
        assert all(e.status.node_id == "node1" for e in events)

    asyncio.run(scenario())
    assert shared.client("node1").status().node_id == "node1"  # the agent is fine after


def test_client_from_another_ca_is_refused(shared: LocalCluster, tmp_path: Path) -> None:
    rogue = tmp_path / "rogue"
    create_ca(rogue, "rogue")
    issue_certificate(rogue, "admin", rogue, server=False)
    # Trust both CAs so that it is the AGENT that refuses us, not us the agent.
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes((rogue / "ca.pem").read_bytes() + shared.cluster.ca.read_bytes())
    rogue_args = [
        "--config",
        str(shared.cluster.config_path),
        "--ca",
        str(bundle),
        "--cert",
        str(rogue / "admin.pem"),
        "--key",
        str(rogue / "admin.key"),
    ]
    rc, _, err = shared.cli(*rogue_args, "state", "web", "--node", "node1", admin=False)
    assert rc == 10, err
    assert "refuses this client's certificate" in err, err
    rc, out, _ = shared.cli(*rogue_args, "status", admin=False)
    assert rc == 10 and out.count("ERROR") >= 2, out
    # And a client that trusts only the rogue CA refuses the agent itself.
    rc, _, err = shared.cli(
        *rogue_args[:2],
        "--ca",
        str(rogue / "ca.pem"),
        *rogue_args[4:],
        "state",
        "web",
        "--node",
        "node1",
        admin=False,
    )
    assert rc == 10 and "does not trust the agent's certificate" in err, err


def test_entry_point_runs_as_a_program(shared: LocalCluster) -> None:
    cmd = [
        sys.executable,
        "-m",
        "node_agent.cli.main",
        *shared.cluster.cli_args(),
        "status",
        "--json",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["nodes"]["node1"]["reachable"]
    assert "Handshake" not in done.stderr  # grpc core's noise stays quiet


def test_commands_needing_a_node_or_a_primary_say_so(shared: LocalCluster) -> None:
    rc, _, err = shared.cli("prim", "web", "--yes")
    assert rc == 16 and "required: --node" in err  # a usage error: nothing was asked
    rc, _, err = shared.cli("swap", "nosuch")
    assert rc == 11 and "unknown module" in err


# ----- acting ----------------------------------------------------------------------------


def test_swap_moves_the_primary(lc: LocalCluster) -> None:
    primary, secondary = lc.wait_settled("web")
    assert f"served by {primary}" in page(lc)
    rc, out, err = lc.cli("swap", "web")
    assert rc == 0, out + err
    assert out.startswith(f"{primary}: accepted"), out
    lc.wait_state(secondary, "web", "PRIM", "READY")
    lc.wait_state(primary, "web", "SECOND", "READY")
    assert f"served by {secondary}" in page(lc)
    assert lc.cli("state", "web", "--node", secondary)[0] == 3
    # Every transition names who asked, with the certificate the agent saw.
    _, log, _ = lc.cli("log", "web", "--grep", "swap")
    assert "(cert admin)" in log, log


def test_stop_secondary_first_then_start_both(lc: LocalCluster) -> None:
    primary, secondary = lc.wait_settled("web")
    rc, out, err = lc.cli("stop", "web")
    assert rc == 0, out + err
    # The secondary is stopped first, so the primary never hands over to it.
    assert out.splitlines()[0].startswith(f"{secondary}: accepted"), out
    assert out.splitlines()[1].startswith(f"{primary}: accepted"), out
    for node in (primary, secondary):
        lc.wait_state(node, "web", "STOP")
    _, log, _ = lc.cli("log", "web", "--node", secondary, "--limit", "1000")
    assert "-> ALONE" not in log.split("command stop")[-1], log  # no takeover after the stop
    rc, out, _ = lc.cli("stop", "web")
    assert rc == 0 and "already stopped" in out
    rc, out, err = lc.cli("start", "web")
    assert rc == 0, out + err
    assert {line.split(":")[0] for line in out.splitlines()} == {"node1", "node2"}
    lc.wait_settled("web")
    assert "served by" in page(lc)


def test_one_agent_down(lc: LocalCluster) -> None:
    primary, secondary = lc.wait_settled("web")
    lc.kill(primary)
    rc, out, _ = lc.cli("status")
    assert rc == 0, out  # one node answered
    assert "ERROR" in out and "connection refused" in out, out
    rc, _, err = lc.cli("state", "web", "--node", primary)
    assert rc == 10 and f"agent {primary}" in err and "unavailable" in err, err
    lc.wait_state(secondary, "web", "ALONE", "READY", timeout=15)
    # The crashed node's app died with its agent, so the survivor could take the port.
    assert f"served by {secondary}" in page(lc)
    assert lc.cli("state", "web", "--node", secondary)[0] == 2
    rc, out, _ = lc.cli("status", "--json")
    doc = json.loads(out)
    assert rc == 0 and not doc["nodes"][primary]["reachable"] and doc["nodes"][primary]["error"]
    # The crashed node returns as secondary.
    lc.start(primary)
    lc.wait_state(primary, "web", "SECOND", "READY")
    lc.wait_state(secondary, "web", "PRIM", "READY")
