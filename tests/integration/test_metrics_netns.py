"""The metrics endpoint and the gRPC health follow a real failover (issue 14, point 4;
docs/metrics.md): two agents in their network namespaces with ``[metrics] listen``, the
endpoint scraped over HTTP and the health checked over gRPC from the client namespace,
the primary's agent SIGKILLed, the survivor's numbers and health watched as it takes
over."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import require_binary
from tests.integration.cluster_netns import API_PORT, HB_PORT, MODULE, TIMEOUT_MS, NetnsCluster
from tests.integration.netns import LAN_IP, Topology

pytestmark = pytest.mark.root

METRICS_PORT = 9780
FAILOVER_DEADLINE_S = TIMEOUT_MS / 1000 + 5.0  # detection, then app start and VIP
MODULE_HEALTH = f"mirrorpair.module.{MODULE}"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def cluster(topology: Topology, tmp_path: Path) -> Iterator[NetnsCluster]:
    require_binary("ping")
    require_binary("arping")
    with NetnsCluster(topology, tmp_path / "cluster") as c:
        text = c.config.read_text() + f'\n[metrics]\nlisten = "0.0.0.0:{METRICS_PORT}"\n'
        c.config.write_text(text)
        yield c


def scrape(c: NetnsCluster, node: str) -> Samples:
    url = f"http://{LAN_IP[node]}:{METRICS_PORT}/metrics"
    reply = c.probe("client").ask(op="http", url=url)
    assert "body" in reply, f"scraping {url}: {reply.get('error')}"
    out: Samples = {}
    for family in text_string_to_metric_families(reply["body"]):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def health(c: NetnsCluster, node: str, service: str) -> str:
    reply = c.probe("client").ask(op="health", address=f"{LAN_IP[node]}:{API_PORT}",
                                  node=node, service=service)  # fmt: skip
    return reply.get("status") or reply.get("code") or f"error: {reply.get('error')}"


def test_metrics_and_health_follow_a_real_failover(cluster: NetnsCluster) -> None:
    c = cluster
    c.start()
    c.wait_pair("node1")
    for node, serving in (("node1", "SERVING"), ("node2", "NOT_SERVING")):
        c.wait_for(lambda n=node, s=serving: health(c, n, MODULE_HEALTH) == s,
                   f"{MODULE_HEALTH} {serving} on {node}", 5)  # fmt: skip
        # Published every 0.25 s from the engine's state: not the instant the pair forms.
        c.wait_for(lambda n=node: health(c, n, "") == "SERVING", f"{node} SERVING overall", 5)
    assert health(c, "node2", "mirrorpair.module.nosuch") == "NOT_FOUND"

    m1 = {"node": "node1", "module": MODULE}
    m2 = {"node": "node2", "module": MODULE}
    one = scrape(c, "node1")
    assert value(one, "mirrorpair_module_state", **m1, state="PRIM") == 1
    assert value(one, "mirrorpair_module_serving", **m1) == 1
    before = scrape(c, "node2")
    assert value(before, "mirrorpair_agent_responsive", node="node2") == 1
    assert value(before, "mirrorpair_engine_serving", node="node2") == 1
    assert value(before, "mirrorpair_module_state", **m2, state="SECOND") == 1
    assert value(before, "mirrorpair_module_state", **m2, state="ALONE") == 0
    assert value(before, "mirrorpair_module_role", **m2, role="secondary") == 1
    assert value(before, "mirrorpair_module_serving", **m2) == 0
    assert value(before, "mirrorpair_failovers_total", **m2, cause="peer-lost") == 0
    assert value(before, "mirrorpair_peer_alive", node="node2", peer="node1") == 1
    for link in ("lan", "direct"):
        assert value(before, "mirrorpair_heartbeat_link_up", node="node2", link=link) == 1
        assert value(before, "mirrorpair_heartbeat_received_total", node="node2", link=link)

    # Datagrams from a host that is not the peer are rejected, and counted.
    lan = {"node": "node2", "link": "lan"}
    assert value(before, "mirrorpair_heartbeat_rejected_total", **lan) == 0
    for _ in range(2):
        c.send_udp("client", (LAN_IP["client"], 0), (LAN_IP["node2"], HB_PORT), b"forged")
    rejected = {"node": "node2", "reason": "unexpected source"}
    c.wait_for(lambda: value(scrape(c, "node2"), "mirrorpair_heartbeats_rejected_total",
                             **rejected) == 2, "2 rejected datagrams counted", 5)  # fmt: skip
    assert value(scrape(c, "node2"), "mirrorpair_heartbeat_rejected_total", **lan) == 2

    c.kill_agent("node1")
    c.wait_for(lambda: health(c, "node2", MODULE_HEALTH) == "SERVING",
               f"{MODULE_HEALTH} SERVING on node2", FAILOVER_DEADLINE_S)  # fmt: skip
    after = scrape(c, "node2")
    assert value(after, "mirrorpair_module_state", **m2, state="ALONE") == 1
    assert value(after, "mirrorpair_module_state", **m2, state="SECOND") == 0
    assert value(after, "mirrorpair_module_role", **m2, role="primary") == 1
    assert value(after, "mirrorpair_module_serving", **m2) == 1
    assert value(after, "mirrorpair_failovers_total", **m2, cause="peer-lost") == 1
    took_over = {**m2, "state": "ALONE", "cause": "peer-lost"}
    assert value(after, "mirrorpair_module_transitions_total", **took_over) == 1
    assert value(after, "mirrorpair_peer_alive", node="node2", peer="node1") == 0
    for link in ("lan", "direct"):
        assert value(after, "mirrorpair_heartbeat_link_up", node="node2", link=link) == 0
        age = value(after, "mirrorpair_heartbeat_last_heard_seconds", node="node2", link=link)
        assert age is not None and age >= TIMEOUT_MS / 1000
    # The dead node answers neither (the harness's view of a crashed agent).
    assert re.fullmatch(r"UNAVAILABLE|DEADLINE_EXCEEDED", health(c, "node1", ""))
