"""A scrape's snapshot -> Prometheus metric families (pure; docs/metrics.md lists them).

Every family is prefixed ``mirrorpair_`` and labelled with ``node`` (node1/node2), plus
``module`` or ``link`` where it is about one. States, readiness, roles and replication
modes are one-hot gauges (one series per possible value, 1 for the current one), so a
query never needs to know the enum numbers.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from node_agent import VERSION
from node_agent.core.transition_counts import FAILOVER_CAUSES
from node_agent.metrics.snapshot import ModuleExtra, Snapshot
from protos import dataplane_pb2 as dp
from protos import mirrorpair_pb2 as pb

P = "mirrorpair_"
STATES = ("STOP", "WAIT", "ALONE", "PRIM", "SECOND", "UP")
READINESS = ("NOT_READY", "TRANSIENT", "READY")
ROLES = ("primary", "secondary", "none")
REPL_MODES = ("track", "connecting", "resync", "replicate", "held", "fenced")
M = ("node", "module")  # the labels of a module's families


def state_name(value: int) -> str:
    return pb.ModuleState.Name(value).removeprefix("STATE_")


def readiness_name(value: int) -> str:
    return pb.Readiness.Name(value).removeprefix("READINESS_")


def role_of(state: int) -> str:
    name = state_name(state)
    return "primary" if name in ("ALONE", "PRIM") else "secondary" if name == "SECOND" else "none"


def serves(m: pb.ModuleStatus) -> bool:
    """This node serves the module: primary with its resource running (as the health)."""
    return role_of(m.state) == "primary" and m.resource_running


def unresponsive(node: str) -> list[Metric]:
    """The event loop did not answer in time: only say so (nothing else is known)."""
    g = GaugeMetricFamily(P + "agent_responsive", "1 if the agent's event loop answered "
                          "this scrape in time", labels=["node"])  # fmt: skip
    g.add_metric([node], 0)
    return [g]


def families(snap: Snapshot) -> list[Metric]:
    st, node = snap.status, snap.status.node_id
    return [*_node(snap, node), *_links(st, node), *_modules(snap, node)]


def _gauge(name: str, doc: str, labels: tuple[str, ...] | list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(P + name, doc, labels=list(labels))


def _counter(name: str, doc: str, labels: tuple[str, ...] | list[str]) -> CounterMetricFamily:
    return CounterMetricFamily(P + name, doc, labels=list(labels))


def _node(snap: Snapshot, node: str) -> Iterator[Metric]:
    st = snap.status
    g = _gauge("agent_responsive", "1 if the agent's event loop answered this scrape in time",
               ["node"])  # fmt: skip
    g.add_metric([node], 1)
    yield g
    g = _gauge("agent_info", "The agent: its cluster and version (value 1)",
               ["node", "cluster", "version"])  # fmt: skip
    g.add_metric([node, st.cluster_name, st.version or VERSION], 1)
    yield g
    g = _gauge("engine_serving", "1 while the engine runs its modules (not starting or "
               "stopping): the overall gRPC health", ["node"])  # fmt: skip
    g.add_metric([node], 1 if snap.serving else 0)
    yield g
    g = _gauge("config_version", "Configuration version this node runs", ["node"])
    g.add_metric([node], st.config_version)
    yield g
    g = _gauge("peer_config_version", "Configuration version the peer announced (0 = not "
               "heard)", ["node"])  # fmt: skip
    g.add_metric([node], st.peer_config_version)
    yield g
    g = _gauge("peer_alive", "1 while the peer is heard on at least one heartbeat link, or "
                   "within the grace its agent announced when it left for a restart",
               ["node", "peer"])  # fmt: skip
    g.add_metric([node, st.peer_id], 1 if st.peer_alive else 0)
    yield g
    if st.witness_configured:
        g = _gauge("witness_reachable", "1 while the witness answers", ["node"])
        g.add_metric([node], 1 if st.witness_reachable else 0)
        yield g
    c = _counter("heartbeats_rejected", "Heartbeat datagrams rejected (forged, replayed, "
                 "malformed, unexpected source), all links, by reason",
                 ["node", "reason"])  # fmt: skip
    for reason, n in sorted(snap.rejected_by_reason.items()):
        c.add_metric([node, reason], n)
    yield c


def _links(st: pb.NodeStatus, node: str) -> Iterator[Metric]:
    labels = ("node", "link")
    up = _gauge("heartbeat_link_up", "1 while the peer is heard on this heartbeat link",
                labels)  # fmt: skip
    age = _gauge("heartbeat_last_heard_seconds", "Seconds since the peer was last heard on "
                 "this link (absent: never heard)", labels)  # fmt: skip
    gap = _gauge("heartbeat_gap_max_seconds", "Longest recent gap between two heartbeats "
                 "heard on this link", labels)  # fmt: skip
    rx = _counter("heartbeat_received", "Authenticated heartbeat datagrams accepted on "
                  "this link", labels)  # fmt: skip
    rej = _counter("heartbeat_rejected", "Heartbeat datagrams rejected on this link",
                   labels)  # fmt: skip
    for link in st.links:
        key = [node, link.name]
        up.add_metric(key, 1 if link.up else 0)
        if link.last_heard_age_s >= 0:
            age.add_metric(key, link.last_heard_age_s)
        gap.add_metric(key, link.gap_max_s)
        rx.add_metric(key, link.received)
        rej.add_metric(key, link.rejected)
    yield from (up, age, gap, rx, rej)


def _modules(snap: Snapshot, node: str) -> Iterator[Metric]:
    fams = _ModuleFamilies()
    for m in snap.status.modules:
        fams.add(node, m, snap.modules.get(m.name) or ModuleExtra())
    yield from fams.all()


class _ModuleFamilies:
    """The families of every module, filled one module at a time."""

    def __init__(self) -> None:
        g, c = _gauge, _counter
        self.state = g("module_state", "1 for the module's state on this node (one-hot)",
                       [*M, "state"])  # fmt: skip
        self.ready = g("module_readiness", "1 for the module's readiness on this node "
                       "(one-hot)", [*M, "readiness"])  # fmt: skip
        self.role = g("module_role", "1 for this node's role for the module: primary "
                      "(ALONE, PRIM), secondary (SECOND) or none (one-hot)",
                      [*M, "role"])  # fmt: skip
        self.serving = g("module_serving", "1 while this node serves the module: primary "
                         "with its resource running (the module's gRPC health)", M)  # fmt: skip
        self.flags = {
            name: g(f"module_{name}", doc, M)
            for name, doc in (
                ("uptodate", "1 if this node's copy is complete and current"),
                ("degraded", "1 if the primary's replication failed (it goes on alone)"),
                ("split_brain", "1 if both nodes wrote independently (operator must choose)"),
                ("resource_running", "1 while the module's resource runs on this node"),
                ("vip_held", "1 while this node's interfaces hold the module's VIP"),
            )
        }
        self.since = g("module_state_since_timestamp_seconds", "Unix time of the module's "
                       "last transition on this node", M)  # fmt: skip
        self.checker = g("module_checker_ok", "1 while the checker passes", [*M, "checker"])
        self.transitions = c("module_transitions", "Transitions of the module on this "
                             "node into a state, by the rule or command that caused them",
                             [*M, "state", "cause"])  # fmt: skip
        self.failovers = c("failovers", "Times this node took over the module its peer "
                           "served (SECOND -> ALONE), by the rule or command that caused it",
                           [*M, "cause"])  # fmt: skip
        self.resync_active = g("resync_active", "1 while a resync of the module runs", M)
        self.resync_done = g("resync_bytes_done", "Bytes the running resync has sent", M)
        self.resync_total = g("resync_bytes_total", "Bytes the running resync must send", M)
        self.resync_ratio = g("resync_progress_ratio", "Done / total of the running resync "
                              "(0..1; absent when none runs)", M)  # fmt: skip
        self.resync_rate = g("resync_rate_bytes_per_second", "Throughput of the running "
                             "resync", M)  # fmt: skip
        self.resync_eta = g("resync_eta_seconds", "Estimated seconds left in the running "
                            "resync (absent when unknown)", M)  # fmt: skip
        self.dp_up = g("dataplane_up", "1 while the module's data plane process runs "
                       "(replicated modules)", M)  # fmt: skip
        self.mode = g("replication_mode", "1 for the primary's replication mode (one-hot; "
                      "replicated modules, this node primary)", [*M, "mode"])  # fmt: skip
        self.ops = c("replicated_operations", "Operations sent on the module's replication "
                     "stream by this node's data plane (resync included)", M)  # fmt: skip
        self.bytes = c("replicated_bytes", "Bytes sent on the module's replication stream "
                       "by this node's data plane (resync included)", M)  # fmt: skip
        self.latency = HistogramMetricFamily(
            P + "replication_ack_latency_seconds", "From a write's enqueue to the peer's "
            "acknowledgement, for writes an application waited on", labels=list(M),
        )  # fmt: skip
        self.held = g("held_writes", "Writes waiting for the agent's verdict after the "
                      "replication stream broke (mode held)", M)  # fmt: skip

    def add(self, node: str, m: pb.ModuleStatus, extra: ModuleExtra) -> None:
        key = [node, m.name]
        state, ready = state_name(m.state), readiness_name(m.readiness)
        for s in STATES:
            self.state.add_metric([*key, s], 1 if s == state else 0)
        for r in READINESS:
            self.ready.add_metric([*key, r], 1 if r == ready else 0)
        for r in ROLES:
            self.role.add_metric([*key, r], 1 if r == role_of(m.state) else 0)
        self.serving.add_metric(key, 1 if serves(m) else 0)
        for name, fam in self.flags.items():
            fam.add_metric(key, 1 if getattr(m, name) else 0)
        if m.state_since:
            self.since.add_metric(key, m.state_since)
        for ch in m.checkers:
            self.checker.add_metric([*key, ch.name], 1 if ch.ok else 0)
        for (to, cause), n in sorted(extra.counts.transitions.items()):
            self.transitions.add_metric([*key, to, cause], n)
        for cause in sorted(FAILOVER_CAUSES | set(extra.counts.failovers)):
            self.failovers.add_metric([*key, cause], extra.counts.failovers.get(cause, 0))
        self._resync(key, m.resync)
        if m.HasField("data_plane"):
            self._dataplane(key, m, extra.dataplane)

    def _resync(self, key: list[str], r: pb.ResyncProgress) -> None:
        self.resync_active.add_metric(key, 1 if r.active else 0)
        if not r.active:
            return
        self.resync_done.add_metric(key, r.bytes_done)
        self.resync_total.add_metric(key, r.bytes_total)
        if r.bytes_total:
            self.resync_ratio.add_metric(key, min(1.0, r.bytes_done / r.bytes_total))
        self.resync_rate.add_metric(key, r.rate_bytes_per_s)
        if r.eta_s >= 0 and r.bytes_total:
            self.resync_eta.add_metric(key, r.eta_s)

    def _dataplane(self, key: list[str], m: pb.ModuleStatus, d: dp.DataPlaneState | None) -> None:
        self.dp_up.add_metric(key, 1 if m.data_plane.pid else 0)
        if d is None or not m.data_plane.pid:
            return
        if role_of(m.state) == "primary":
            for mode in REPL_MODES:
                self.mode.add_metric([*key, mode], 1 if mode == d.mode else 0)
        self.ops.add_metric(key, d.repl_ops)
        self.bytes.add_metric(key, d.repl_bytes)
        self.held.add_metric(key, d.held_writes)
        bounds, counts = list(d.ack_latency_bounds_s), list(d.ack_latency_counts)
        if bounds and len(counts) == len(bounds) + 1:  # an older data plane: none
            buckets, total = [], 0
            for bound, n in zip([*bounds, float("inf")], counts, strict=True):
                total += n
                buckets.append((_le(bound), total))
            self.latency.add_metric(key, buckets, d.ack_latency_sum_s)

    def all(self) -> list[Metric]:
        return [
            self.state, self.ready, self.role, self.serving, *self.flags.values(), self.since,
            self.checker, self.transitions, self.failovers, self.resync_active,
            self.resync_done, self.resync_total, self.resync_ratio, self.resync_rate,
            self.resync_eta, self.dp_up, self.mode, self.ops, self.bytes, self.latency,
            self.held,
        ]  # fmt: skip


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))
