"""Snapshots for the model's unit tests, built as the agents send them (proto messages)."""

from __future__ import annotations

from console.model.cluster import ClusterModel
from protos import mirrorpair_pb2 as pb

STATES = {n.removeprefix("STATE_"): v for n, v in pb.ModuleState.items()}
READY = {
    "NotReady": pb.READINESS_NOT_READY,
    "Transient": pb.READINESS_TRANSIENT,
    "Ready": pb.READINESS_READY,
}
PEER = {"node1": "node2", "node2": "node1"}


def module(
    name: str = "web",
    state: str = "PRIM",
    readiness: str = "Ready",
    *,
    uptodate: bool = True,
    degraded: bool = False,
    split_brain: bool = False,
    vip: str = "",
    vip_held: bool = False,
    peer: tuple[str, str] | None = None,
    resync: tuple[int, int, float, float] | None = None,
    last_rule: str = "",
    reason: str = "",
    preferred: str = "node1",
    checkers: tuple[tuple[str, bool], ...] = (),
) -> pb.ModuleStatus:
    m = pb.ModuleStatus(
        name=name,
        kind="app",
        state=STATES[state],
        readiness=READY[readiness],
        uptodate=uptodate,
        degraded=degraded,
        split_brain=split_brain,
        vip=vip,
        vip_held=vip_held,
        last_rule=last_rule,
        reason=reason,
        preferred_node=preferred,
    )
    if peer is not None:
        m.peer_state, m.peer_readiness = STATES[peer[0]], READY[peer[1]]
    if resync is not None:
        done, total, rate, eta = resync
        m.resync.CopyFrom(
            pb.ResyncProgress(
                active=True, bytes_done=done, bytes_total=total, rate_bytes_per_s=rate, eta_s=eta
            )
        )
    for cname, ok in checkers:
        m.checkers.add(
            name=cname, kind="tcp", ok=ok, detail="" if ok else "refused", action="restart"
        )
    return m


def node(
    node_id: str,
    *modules: pb.ModuleStatus,
    links_up: tuple[bool, ...] = (True, True),
    peer_alive: bool = True,
) -> pb.NodeStatus:
    st = pb.NodeStatus(
        cluster_name="c",
        node_id=node_id,
        peer_id=PEER[node_id],
        peer_alive=peer_alive,
        version="0.1.0",
    )
    for i, up in enumerate(links_up):
        st.links.add(
            name=f"link{i}",
            up=up,
            local_address="10.0.0.1",
            peer_address="10.0.0.2",
            last_heard_age_s=0.1,
        )
    st.modules.extend(modules)
    return st


ADDR = {"node1": "127.0.0.1:1", "node2": "127.0.0.2:2"}


def pair(n1: pb.ModuleStatus, n2: pb.ModuleStatus | None) -> ClusterModel:
    """A model that got node1's snapshot and node2's (None: node2 refuses connections)."""
    m = ClusterModel("c", ADDR)
    m.apply_snapshot("node1", node("node1", n1), 1.0)
    if n2 is None:
        m.apply_unreachable("node2", "connection refused", 1.0)
    else:
        m.apply_snapshot("node2", node("node2", n2), 1.0)
    return m
