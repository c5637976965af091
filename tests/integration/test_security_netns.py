"""Refusals (issue 2; DESIGN §4, §7): clients without a valid certificate, malformed
configs, forged heartbeats. Real agents in network namespaces, except for the config
checks, which need no network: the agent must exit before it binds anything."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from node_agent.heartbeat.codec import encode
from protos import heartbeat_pb2 as hpb
from protos import mirrorpair_pb2 as pb
from tests.integration.cluster_netns import (
    BIN,
    HB_PORT,
    MODULE,
    SECRET,
    NetnsCluster,
    cluster_toml,
)
from tests.integration.netns import HB_IP, LAN_IP, Topology


@pytest.fixture
def cluster(topology: Topology, tmp_path: Path) -> Iterator[NetnsCluster]:
    with NetnsCluster(topology, tmp_path / "cluster") as c:
        c.start()
        c.wait_pair("node1")
        yield c


@pytest.mark.root
def test_client_without_valid_certificate_is_refused(cluster: NetnsCluster):
    pki, rogue = cluster.base / "pki", cluster.base / "rogue"
    assert cluster.status_with("node1", pki / "ca.pem", pki / "admin.pem", pki / "admin.key")
    for cert, key in ((None, None), (rogue / "admin.pem", rogue / "admin.key")):
        outcome = cluster.status_with("node1", pki / "ca.pem", cert, key)
        assert outcome != "ok" and "UNAVAILABLE" in outcome, (cert, outcome)

    ok = cluster.cli("status", "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    doc = json.loads(ok.stdout)
    assert all(doc["nodes"][n]["reachable"] for n in ("node1", "node2")), doc
    # The CLI checks its files first: a certificate of another CA never leaves the client.
    refused = cluster.cli("status", "--json", cert="rogue")
    assert refused.returncode == 12 and "not issued by the CA" in refused.stderr, refused.stderr
    r = cluster.cli("stop", MODULE, "--node", "node1", "--yes", cert="rogue")
    assert r.returncode == 12, r.stdout + r.stderr
    assert cluster.state("node1") == ("PRIM", "READY")  # the refused command did nothing


BAD_CONFIGS: list[tuple[str, str, str]] = [
    ("pulse_ms = 250", "pulse_ms = 0", "cluster.pulse_ms"),
    ("timeout_ms = 1500", "timeout_ms = 100", "cluster.timeout_ms"),
    ("pulse_ms = 250", "pluse_ms = 250", "cluster.pluse_ms"),
    ('address = "10.77.0.100/24"', 'address = "10.77.0.100"', "module.web.vip.address"),
    ('kind = "process"', 'kind = "prcess"', "module.web.checker.process.kind"),
    ("port = 7701", "port = 70000", "heartbeat[0].port"),
    ('node2 = "10.78.0.2"', 'node2 = "10.78.0"', "heartbeat[1].node2"),
]


@pytest.mark.parametrize(("old", "new", "key"), BAD_CONFIGS, ids=[b[2] for b in BAD_CONFIGS])
def test_malformed_config_is_refused_naming_the_key(
    tmp_path: Path, old: str, new: str, key: str
) -> None:
    text = cluster_toml(tmp_path)
    assert old in text
    config = tmp_path / "cluster.toml"
    config.write_text(text.replace(old, new, 1))
    argv = [BIN / "mirrorpair-agent", "--config", config, "--node", "node1"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert r.returncode == 78, r.stderr  # EX_CONFIG: not restarted
    assert f"config error at {key}" in r.stderr, r.stderr
    assert not (tmp_path / "node1").exists()  # refused before touching anything


def forged(cluster_view: dict, link: str, *, boot_id: int = 2**62, seq: int = 1) -> hpb.Heartbeat:
    """A heartbeat from "node2" claiming it serves the module and was primary first."""
    return hpb.Heartbeat(
        cluster="nstest", node_id="node2", boot_id=boot_id, seq=seq, link=link,
        sent_time=time.time(), witness_reachable=True,
        modules=[hpb.PeerModuleView(
            name=MODULE, state=pb.STATE_ALONE, readiness=pb.READINESS_READY, uptodate=True,
            generations=[*cluster_view["generations"], "forged"], primary_since=1.0,
            resource_up=True, config_version=1,
        )],
    )  # fmt: skip


@pytest.mark.root
def test_forged_heartbeat_changes_nothing_and_is_counted(cluster: NetnsCluster):
    before = cluster.status("node1")
    assert before is not None
    view = before["modules"][0]
    rejected = {x["name"]: int(x["rejected"]) for x in before["links"]}
    sent = {"lan": 0, "direct": 0}

    def send(ns: str, link: str, data: bytes) -> None:
        ips = LAN_IP if link == "lan" else HB_IP
        cluster.send_udp(ns, (ips[ns], 0), (ips["node1"], HB_PORT), data)
        sent[link] += 1

    wrong_key, real_key = b"not-the-cluster-secret!", SECRET.encode()
    for seq in range(1, 6):  # wrong key, from node2's own address, on both links
        for link in ("lan", "direct"):
            send("node2", link, encode(forged(view, link, seq=seq), wrong_key))
    for seq in range(1, 4):  # right key, but from the client: not the peer's address
        send("client", "lan", encode(forged(view, "lan", seq=seq), real_key))
    send("node2", "lan", b"MPH1" + b"\0" * 40)  # garbage
    # Right key and address, but recorded before node1's agent started (its echo is not
    # node1's boot id): it never counts, and is not shown as rejected (a first contact
    # brings such datagrams too). The state checks below show it changed nothing.
    cluster.send_udp("node2", (LAN_IP["node2"], 0), (LAN_IP["node1"], HB_PORT),
                     encode(forged(view, "lan", boot_id=0), real_key))  # fmt: skip

    def counted() -> dict | None:
        st = cluster.status("node1")
        if not st:
            return None
        got = {x["name"]: int(x["rejected"]) for x in st["links"]}
        total_ok = int(st["heartbeats_rejected"]) >= int(before["heartbeats_rejected"]) + sum(
            sent.values()
        )
        links_ok = all(got[k] >= rejected[k] + n for k, n in sent.items())
        return st if total_ok and links_ok else None

    after = cluster.wait_for(counted, "the forged datagrams counted as rejected", 10)
    # Let several pulses and decision steps pass: still the same pair, same data history.
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        assert cluster.state("node1") == ("PRIM", "READY")
        assert cluster.state("node2") == ("SECOND", "READY")
        time.sleep(0.1)
    m1 = cluster.module("node1")
    assert m1 is not None
    assert m1["generations"] == view["generations"] and m1["peer_state"] == "STATE_SECOND"
    assert after["peer_alive"] and cluster.http() == "node1\n"
