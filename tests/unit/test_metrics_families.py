"""The collector's mapping: a snapshot (status, counters, data plane state) -> the
Prometheus text an agent serves (node_agent/metrics/families.py; docs/metrics.md).
Each test renders through prometheus_client's own exposition and parser, as a scrape
would see it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from node_agent.core.transition_counts import TransitionCounts
from node_agent.metrics.families import READINESS, STATES, families, unresponsive
from node_agent.metrics.snapshot import ModuleExtra, Snapshot
from node_agent.replication.stream.totals import StreamTotals
from protos import dataplane_pb2 as dp
from protos import mirrorpair_pb2 as pb

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class _Fixed(Collector):
    def __init__(self, metrics: list) -> None:
        self.metrics = metrics

    def collect(self):  # type: ignore[no-untyped-def]
        return self.metrics


def render(metrics: list) -> Samples:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(metrics))
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def named(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def at(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def module(name: str = "web", state: int = pb.STATE_PRIM, **kw: object) -> pb.ModuleStatus:
    kw.setdefault("readiness", pb.READINESS_READY)
    return pb.ModuleStatus(name=name, state=state, **kw)  # type: ignore[arg-type]


def snapshot(*modules: pb.ModuleStatus, extra: dict[str, ModuleExtra] | None = None,
             **status: object) -> Snapshot:  # fmt: skip
    s = pb.NodeStatus(node_id="node2", peer_id="node1", cluster_name="c", version="9.9",
                      modules=list(modules), **status)  # type: ignore[arg-type]  # fmt: skip
    return Snapshot(status=s, serving=True, modules=extra or {})


M = {"node": "node2", "module": "web"}

STATE_VALUES = [getattr(pb, f"STATE_{s}") for s in STATES]
READY_VALUES = [getattr(pb, f"READINESS_{r}") for r in READINESS]


@given(st.sampled_from(STATE_VALUES), st.sampled_from(READY_VALUES), st.booleans())
def test_state_readiness_and_role_are_one_hot(state: int, ready: int, running: bool) -> None:
    out = render(families(snapshot(module(state=state, readiness=ready,
                                          resource_running=running))))  # fmt: skip
    name = pb.ModuleState.Name(state).removeprefix("STATE_")
    states = named(out, "mirrorpair_module_state")
    assert len(states) == len(STATES) and sum(states.values()) == 1
    assert at(out, "mirrorpair_module_state", **M, state=name) == 1
    readiness = named(out, "mirrorpair_module_readiness")
    assert sum(readiness.values()) == 1
    assert at(out, "mirrorpair_module_readiness", **M,
              readiness=pb.Readiness.Name(ready).removeprefix("READINESS_")) == 1  # fmt: skip
    role = {"ALONE": "primary", "PRIM": "primary", "SECOND": "secondary"}.get(name, "none")
    assert at(out, "mirrorpair_module_role", **M, role=role) == 1
    assert sum(named(out, "mirrorpair_module_role").values()) == 1
    assert at(out, "mirrorpair_module_serving", **M) == (role == "primary" and running)
    assert at(out, "mirrorpair_module_resource_running", **M) == running


def test_node_level_families() -> None:
    links = [
        pb.LinkStatus(name="lan", up=True, last_heard_age_s=0.2, received=40, rejected=2,
                      gap_max_s=0.6),
        pb.LinkStatus(name="direct", up=False, last_heard_age_s=-1.0),
    ]  # fmt: skip
    snap = snapshot(links=links, peer_alive=True, config_version=7, peer_config_version=6,
                    witness_configured=True, witness_reachable=False)  # fmt: skip
    snap = Snapshot(snap.status, serving=False, rejected_by_reason={"replay": 3})
    out = render(families(snap))
    assert at(out, "mirrorpair_agent_responsive", node="node2") == 1
    assert at(out, "mirrorpair_agent_info", node="node2", cluster="c", version="9.9") == 1
    assert at(out, "mirrorpair_engine_serving", node="node2") == 0
    assert at(out, "mirrorpair_config_version", node="node2") == 7
    assert at(out, "mirrorpair_peer_config_version", node="node2") == 6
    assert at(out, "mirrorpair_peer_alive", node="node2", peer="node1") == 1
    assert at(out, "mirrorpair_witness_reachable", node="node2") == 0
    assert at(out, "mirrorpair_heartbeats_rejected_total", node="node2", reason="replay") == 3
    lan, direct = {"node": "node2", "link": "lan"}, {"node": "node2", "link": "direct"}
    assert at(out, "mirrorpair_heartbeat_link_up", **lan) == 1
    assert at(out, "mirrorpair_heartbeat_link_up", **direct) == 0
    assert at(out, "mirrorpair_heartbeat_last_heard_seconds", **lan) == pytest.approx(0.2)
    assert at(out, "mirrorpair_heartbeat_last_heard_seconds", **direct) is None  # never
    assert at(out, "mirrorpair_heartbeat_received_total", **lan) == 40
    assert at(out, "mirrorpair_heartbeat_rejected_total", **lan) == 2
    assert at(out, "mirrorpair_heartbeat_gap_max_seconds", **lan) == pytest.approx(0.6)


def test_no_witness_no_witness_series() -> None:
    out = render(families(snapshot()))
    assert not named(out, "mirrorpair_witness_reachable")


def test_transitions_and_failovers() -> None:
    counts = TransitionCounts(Counter({("ALONE", "peer-lost"): 2, ("SECOND", "peer-primary"): 1}),
                              Counter({"peer-lost": 2}))  # fmt: skip
    out = render(families(snapshot(module(), extra={"web": ModuleExtra(counts=counts)})))
    assert at(out, "mirrorpair_module_transitions_total", **M, state="ALONE",
              cause="peer-lost") == 2  # fmt: skip
    assert at(out, "mirrorpair_module_transitions_total", **M, state="SECOND",
              cause="peer-primary") == 1  # fmt: skip
    assert at(out, "mirrorpair_failovers_total", **M, cause="peer-lost") == 2
    assert at(out, "mirrorpair_failovers_total", **M, cause="peer-not-primary") == 0


def test_failover_series_exist_before_the_first_failover() -> None:
    # increase() in an alert rule needs the series at 0 before it moves to 1.
    out = render(families(snapshot(module())))
    assert named(out, "mirrorpair_failovers_total") == {
        frozenset({**M, "cause": c}.items()): 0 for c in ("peer-lost", "peer-not-primary", "prim")
    }


def test_resync_inactive_shows_only_that() -> None:
    out = render(families(snapshot(module(resync=pb.ResyncProgress(active=False)))))
    assert at(out, "mirrorpair_resync_active", **M) == 0
    for name in ("bytes_done", "bytes_total", "progress_ratio", "rate_bytes_per_second",
                 "eta_seconds"):  # fmt: skip
        assert not named(out, f"mirrorpair_resync_{name}"), name


def test_resync_progress_and_rate() -> None:
    r = pb.ResyncProgress(active=True, bytes_done=250, bytes_total=1000, rate_bytes_per_s=50.0,
                          eta_s=15.0)  # fmt: skip
    out = render(families(snapshot(module(state=pb.STATE_SECOND, resync=r))))
    assert at(out, "mirrorpair_resync_active", **M) == 1
    assert at(out, "mirrorpair_resync_progress_ratio", **M) == 0.25
    assert at(out, "mirrorpair_resync_bytes_done", **M) == 250
    assert at(out, "mirrorpair_resync_bytes_total", **M) == 1000
    assert at(out, "mirrorpair_resync_rate_bytes_per_second", **M) == 50
    assert at(out, "mirrorpair_resync_eta_seconds", **M) == 15
    unknown = pb.ResyncProgress(active=True, bytes_done=0, bytes_total=0, eta_s=-1.0)
    out = render(families(snapshot(module(state=pb.STATE_SECOND, resync=unknown))))
    assert not named(out, "mirrorpair_resync_progress_ratio")  # nothing to divide by yet
    assert not named(out, "mirrorpair_resync_eta_seconds")


def _dp_state(totals: StreamTotals, **kw: object) -> dp.DataPlaneState:
    t = totals.snapshot()
    return dp.DataPlaneState(repl_ops=t.ops, repl_bytes=t.bytes, ack_latency_bounds_s=t.bounds_s,
                             ack_latency_counts=t.counts, ack_latency_sum_s=t.latency_sum_s,
                             **kw)  # type: ignore[arg-type]  # fmt: skip


def test_replication_totals_latency_and_held_writes() -> None:
    totals = StreamTotals(bounds_s=(0.001, 0.01))
    totals.sent(ops=3, nbytes=12_345)
    totals.acknowledged([0.0005, 0.001, 0.005, 0.5])
    state = _dp_state(totals, mode="held", held_writes=2)
    m = module(state=pb.STATE_PRIM, data_plane=pb.DataPlaneInfo(pid=42, role="primary"))
    out = render(families(snapshot(m, extra={"web": ModuleExtra(dataplane=state)})))
    assert at(out, "mirrorpair_dataplane_up", **M) == 1
    assert at(out, "mirrorpair_replicated_operations_total", **M) == 3
    assert at(out, "mirrorpair_replicated_bytes_total", **M) == 12_345
    assert at(out, "mirrorpair_held_writes", **M) == 2
    assert at(out, "mirrorpair_replication_mode", **M, mode="held") == 1
    assert sum(named(out, "mirrorpair_replication_mode").values()) == 1
    h = "mirrorpair_replication_ack_latency_seconds"
    assert at(out, f"{h}_bucket", **M, le="0.001") == 2  # "less or equal": 1 ms counts
    assert at(out, f"{h}_bucket", **M, le="0.01") == 3
    assert at(out, f"{h}_bucket", **M, le="+Inf") == 4
    assert at(out, f"{h}_count", **M) == 4
    assert at(out, f"{h}_sum", **M) == pytest.approx(0.5065)


def test_secondary_data_plane_has_no_primary_mode() -> None:
    m = module(state=pb.STATE_SECOND, data_plane=pb.DataPlaneInfo(pid=42, role="secondary"))
    state = _dp_state(StreamTotals(), mode="track")
    out = render(families(snapshot(m, extra={"web": ModuleExtra(dataplane=state)})))
    assert not named(out, "mirrorpair_replication_mode")
    assert at(out, "mirrorpair_replicated_operations_total", **M) == 0


def test_dead_or_old_data_plane() -> None:
    dead = module(data_plane=pb.DataPlaneInfo(pid=0, role="none"))
    state = _dp_state(StreamTotals())
    out = render(families(snapshot(dead, extra={"web": ModuleExtra(dataplane=state)})))
    assert at(out, "mirrorpair_dataplane_up", **M) == 0
    assert not named(out, "mirrorpair_replicated_operations_total")
    # A data plane of an older build reports no latency buckets: no histogram, no error.
    alive = module(data_plane=pb.DataPlaneInfo(pid=7, role="primary"))
    old = dp.DataPlaneState(mode="replicate")
    out = render(families(snapshot(alive, extra={"web": ModuleExtra(dataplane=old)})))
    assert not named(out, "mirrorpair_replication_ack_latency_seconds_count")
    assert at(out, "mirrorpair_replicated_operations_total", **M) == 0


def test_unreplicated_module_has_no_data_plane_series() -> None:
    out = render(families(snapshot(module())))
    assert not named(out, "mirrorpair_dataplane_up")
    assert not named(out, "mirrorpair_replicated_bytes_total")


def test_an_unresponsive_loop_says_only_that() -> None:
    out = render(unresponsive("node1"))
    assert out == {("mirrorpair_agent_responsive", frozenset({("node", "node1")})): 0}


def test_every_family_is_prefixed_and_documented() -> None:
    m = module(data_plane=pb.DataPlaneInfo(pid=1), checkers=[pb.CheckerStatus(name="tcp", ok=1)])
    fams = families(snapshot(m, links=[pb.LinkStatus(name="lan")], witness_configured=True))
    for fam in fams:
        assert fam.name.startswith("mirrorpair_") and fam.documentation, fam.name
    doc = (Path(__file__).parents[2] / "docs" / "metrics.md").read_text()
    for fam in fams:
        shown = fam.name + ("_total" if fam.type == "counter" else "")
        assert f"`{shown}`" in doc, f"{shown} is not in docs/metrics.md"
