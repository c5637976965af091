"""Build the API's status messages (NodeStatus from a node engine's parts, ModuleStatus
from a module driver, links, builds)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from node_agent import VERSION
from node_agent.config.model import ClusterConfig, HeartbeatNetwork, other_node
from node_agent.core.env import PeerView
from node_agent.heartbeat.liveness import LinkState
from node_agent.heartbeat.timing import LinkTiming
from node_agent.protocol import PROTOCOL, PeerBuild, Verdict, judge
from protos import mirrorpair_pb2 as pb

if TYPE_CHECKING:
    from node_agent.engine.heartbeats import Heartbeats
    from node_agent.engine.module_driver import ModuleDriver
    from node_agent.heartbeat.witness import WitnessProbe


def node_status(
    config: ClusterConfig,
    node_id: str,
    hb: Heartbeats,
    witness: WitnessProbe,
    modules: Mapping[str, ModuleDriver],
) -> pb.NodeStatus:
    now = time.monotonic()
    peer = hb.liveness.latest(now)
    peer_id = other_node(node_id)
    nets = {n.name: n for n in config.heartbeat}
    links = [
        link_status(st, nets[st.name], node_id, hb.transport.link_timing(st.name))
        for st in hb.liveness.link_states(now)
    ]
    return pb.NodeStatus(
        cluster_name=config.name,
        node_id=node_id,
        peer_id=peer_id,
        api_address=config.nodes[node_id].api,
        peer_api_address=config.nodes[peer_id].api,
        peer_alive=hb.liveness.peer_alive(now),
        peer_leaving_s=hb.liveness.leaving_left(now),
        witness_configured=witness.configured,
        witness_reachable=witness.reachable,
        links=links,
        modules=[module_status(d, hb.peer_view(name)) for name, d in modules.items()],
        version=VERSION,
        time=time.time(),
        heartbeats_rejected=hb.liveness.rejected_total,
        config_version=config.version,
        peer_config_version=peer.config_version if peer is not None else 0,
        configured=True,
        **peer_build_fields(hb.liveness.peer_build),
    )


def link_status(
    st: LinkState, net: HeartbeatNetwork, node_id: str, timing: LinkTiming
) -> pb.LinkStatus:
    gaps, lateness = timing.gaps.spread(), timing.lateness.spread()
    return pb.LinkStatus(
        name=st.name,
        local_address=net.addresses[node_id],
        peer_address=net.addresses[other_node(node_id)],
        up=st.up,
        last_heard_age_s=-1.0 if st.last_heard_age_s is None else st.last_heard_age_s,
        received=st.received,
        rejected=st.rejected,
        gap_max_s=gaps.max_s,
        gap_p99_s=gaps.p99_s,
        lateness_max_s=lateness.max_s,
        lateness_p99_s=lateness.p99_s,
    )


def module_status(d: ModuleDriver, peer: PeerView | None) -> pb.ModuleStatus:
    m = d.machine
    info = d.resource.describe()
    activity, since = d.activity()
    vm = None
    if info.vm is not None:
        vm = pb.VmInfo(
            domain=info.vm.domain, state=info.state, vcpus=info.vm.vcpus,
            memory_bytes=info.vm.memory_bytes,
            disks=[pb.VmDisk(target=t, path=p, size_bytes=n) for t, p, n in info.vm.disks],
        )  # fmt: skip
    return pb.ModuleStatus(
        name=d.cfg.name,
        kind=d.cfg.kind,
        state=m.state.value,
        readiness=m.readiness.value,
        uptodate=m.current,
        degraded=m.degraded,
        split_brain=m.split_brain,
        reason=m.reason,
        last_rule=m.last_rule,
        generations=list(m.facts.generations),
        synctime=m.facts.synctime,
        vip=d.cfg.vip.address if d.cfg.vip else "",
        vip_held=d.vip_held,
        resource_running=d.running,
        checkers=d.checker_status(),
        resync=d.repl.progress()
        if d.repl is not None
        else pb.ResyncProgress(active=m.resync_wanted),
        preferred_node=d.cfg.preferred,
        state_since=m.state_since,
        peer_state=peer.state.value if peer else pb.STATE_UNSPECIFIED,
        peer_readiness=peer.readiness.value if peer else pb.READINESS_UNSPECIFIED,
        vm=vm,
        last_start_s=d.last_start_s,
        resource_state=info.state,
        activity=activity,
        activity_since=since,
        last_stop_s=d.last_stop_s,
        data_plane=_data_plane(d),
    )


def _data_plane(d: ModuleDriver) -> pb.DataPlaneInfo | None:
    if d.repl is None:
        return None  # nothing replicated: no data plane
    client = d.repl.dp
    if client is None:
        return pb.DataPlaneInfo(pid=0, role="none")  # died: being restarted
    st = client.state
    return pb.DataPlaneInfo(pid=st.pid, version=st.version, role=str(client.role),
                            mode=st.mode if st.role == st.PRIMARY else "", mounts=st.mounts,
                            started_at=st.started_at)  # fmt: skip


def peer_build_fields(peer: PeerBuild | None) -> dict[str, Any]:
    """NodeStatus' protocol and version fields: this agent's, its peer's as announced in
    its heartbeats, and the mismatch to show (node_agent/protocol.py decides)."""
    verdict = judge(PeerBuild(PROTOCOL, VERSION), peer)
    return {
        "protocol": str(PROTOCOL),
        "peer_protocol": str(peer.protocol) if peer is not None else "",
        "peer_version": peer.version if peer is not None else "",
        "version_mismatch": verdict.message,
        "peer_incompatible": verdict.verdict == Verdict.INCOMPATIBLE,
    }
