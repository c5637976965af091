"""One cluster as the console knows it: each node's latest snapshot or why it does
not answer, and the per-module, per-node views derived from them (DESIGN §3, §8)."""

from __future__ import annotations

from dataclasses import dataclass

from console.model.badges import PeerResync, node_badges
from console.model.data_plane import data_plane_colour, data_plane_view
from console.model.states import (
    CONNECTING,
    ERROR,
    NOT_CONFIGURED,
    Colour,
    is_primary,
    readiness_name,
    state_colour,
    state_name,
    worst,
)
from console.model.views import (
    CheckerView,
    LinkView,
    ModuleView,
    NodeModuleView,
    NodeView,
    ResyncView,
)
from protos import mirrorpair_pb2 as pb

NODE_IDS = ("node1", "node2")


def other_node(node_id: str) -> str:
    return NODE_IDS[1] if node_id == NODE_IDS[0] else NODE_IDS[0]


@dataclass
class _Node:
    address: str
    status: pb.NodeStatus | None = None  # kept while unreachable: module names, last facts
    reachable: bool = False
    error: str = ""
    attempted: bool = False  # answered or failed at least once
    last_update: float = 0.0
    down_since: float = 0.0  # when it stopped answering (0 while it answers)


class ClusterModel:
    """Latest knowledge of one two-node cluster. Feed it with ``apply_snapshot`` and
    ``apply_unreachable``; read views with ``node``, ``modules``, ``module``."""

    def __init__(self, name: str, addresses: dict[str, str]) -> None:
        self.name = name
        self._nodes = {n: _Node(addresses.get(n, "")) for n in NODE_IDS}
        self.revision = 0
        self._cache: tuple[int, list[ModuleView]] | None = None

    # ----- input ---------------------------------------------------------------------
    def apply_snapshot(self, node_id: str, status: pb.NodeStatus, when: float) -> None:
        node = self._nodes[node_id]
        node.status, node.reachable, node.error = status, True, ""
        node.attempted, node.last_update, node.down_since = True, when, 0.0
        self.revision += 1

    def apply_unreachable(self, node_id: str, reason: str, when: float) -> None:
        node = self._nodes[node_id]
        changed = node.reachable or node.error != reason or not node.attempted
        if node.reachable or not node.attempted:
            node.down_since = when
        node.reachable, node.error, node.attempted = False, reason, True
        if changed:
            self.revision += 1

    # ----- nodes -----------------------------------------------------------------------
    def reachable(self, node_id: str) -> bool:
        return self._nodes[node_id].reachable

    def status(self, node_id: str) -> pb.NodeStatus | None:
        """The latest snapshot while the node answers, else None."""
        node = self._nodes[node_id]
        return node.status if node.reachable else None

    def node(self, node_id: str) -> NodeView:
        n = self._nodes[node_id]
        st = n.status if n.reachable else None
        links = tuple(
            LinkView(lk.name, lk.up, lk.local_address, lk.peer_address, lk.last_heard_age_s,
                     lk.gap_max_s, lk.gap_p99_s, lk.lateness_max_s, lk.lateness_p99_s)
            for lk in (st.links if st is not None else ())
        )  # fmt: skip
        witness = ""
        if st is not None and st.witness_configured:
            witness = "reachable" if st.witness_reachable else "unreachable"
        return NodeView(
            node_id=node_id,
            address=n.address,
            reachable=n.reachable,
            connecting=not n.attempted,
            error=n.error,
            peer_alive=st.peer_alive if st is not None else None,
            links=links,
            version=st.version if st is not None else "",
            witness=witness,
            last_update=n.last_update,
            down_since=n.down_since,
            config_version=st.config_version if st is not None else 0,
            config_warning=self.config_mismatch(node_id),
            protocol=st.protocol if st is not None else "",
            version_warning=self.version_mismatch(node_id),
            peer_leaving_s=st.peer_leaving_s if st is not None else 0.0,
            peer_incompatible=st.peer_incompatible if st is not None else False,
        )

    def version_mismatch(self, node_id: str) -> str:
        """Why ``node_id``'s agent is not the same build as its peer's ("" if it is, or if
        nobody knows): what the agent itself says of the peer it hears (and whether the
        two are compatible), else the peer's own status (an agent before protocol 1.1
        says nothing of its peer)."""
        st = self.status(node_id)
        if st is None:
            return ""
        if st.version_mismatch:
            return st.version_mismatch
        peer = other_node(node_id)
        theirs = self.status(peer)
        if theirs is not None and theirs.version and st.version and theirs.version != st.version:
            return f"runs agent {st.version}, {peer} runs agent {theirs.version}"
        return ""

    def config_mismatch(self, node_id: str) -> str:
        """Why ``node_id`` does not run the same configuration as its peer ("" if it does,
        or if nobody knows): the peer's own status says, else the version the peer
        announced in its heartbeat (the console may not reach the peer itself)."""
        st = self.status(node_id)
        own = st.config_version if st is not None else 0
        if not own:
            return ""
        peer = other_node(node_id)
        theirs = self.status(peer)
        if theirs is not None and theirs.config_version and theirs.config_version != own:
            return (f"runs configuration version {own}, {peer} runs version "
                    f"{theirs.config_version}")  # fmt: skip
        heard = st.peer_config_version
        if heard and heard != own:
            return f"runs configuration version {own}, its peer announces version {heard}"
        return ""

    # ----- modules ---------------------------------------------------------------------
    def module_names(self) -> list[str]:
        names: list[str] = []
        for n in NODE_IDS:  # node1's order first; a module only node2 knows comes after
            st = self._nodes[n].status
            for m in st.modules if st is not None else ():
                if m.name not in names:
                    names.append(m.name)
        return names

    def modules(self) -> list[ModuleView]:
        if self._cache is None or self._cache[0] != self.revision:
            self._cache = (self.revision, [self._module_view(n) for n in self.module_names()])
        return self._cache[1]

    def module(self, name: str) -> ModuleView | None:
        return next((m for m in self.modules() if m.name == name), None)

    def module_status(self, node_id: str, module: str) -> pb.ModuleStatus | None:
        st = self.status(node_id)
        return _find(st, module) if st is not None else None

    def summary_colour(self) -> Colour:
        """The cluster's light: the worst colour of every module and node."""
        colours = [m.colour for m in self.modules()]
        colours += [self.node(n).colour for n in NODE_IDS if not self.node(n).connecting]
        return worst(colours)

    def _module_view(self, name: str) -> ModuleView:
        per_node = {n: self._node_module(n, name) for n in NODE_IDS}
        sample = next(
            (m for n in NODE_IDS if (m := _find(self._nodes[n].status, name)) is not None), None
        )
        prims = [n for n, v in per_node.items() if v.primary]
        primary = prims[0] if len(prims) == 1 else None
        if not prims:
            primary = self._primary_seen_by_peer(name)
        holder = next((n for n, v in per_node.items() if v.reachable and v.vip_held), None)
        preferred = sample.preferred_node if sample is not None else ""
        home = primary or (prims[0] if prims else "")
        if not home:
            home = preferred if preferred in NODE_IDS else NODE_IDS[0]
        return ModuleView(
            name=name,
            kind=sample.kind if sample is not None else "",
            vip=sample.vip if sample is not None else "",
            vip_holder=holder,
            primary=primary,
            preferred=preferred,
            home=home,
            nodes=per_node,
            two_primaries=len(prims) > 1,
        )

    def _primary_seen_by_peer(self, name: str) -> str | None:
        """An unreachable node that its answering peer still hears as primary."""
        for n in NODE_IDS:
            other = other_node(n)
            m = self.module_status(n, name)
            if m is not None and not self._nodes[other].reachable and is_primary(m.peer_state):
                return other
        return None

    def _node_module(self, node_id: str, name: str) -> NodeModuleView:
        n = self._nodes[node_id]
        if not n.attempted:
            return NodeModuleView(node_id, CONNECTING, "", Colour.GREY, False, True)
        if not n.reachable:
            return NodeModuleView(
                node_id, ERROR, "", Colour.RED, False, True, reason=n.error or "not answering"
            )
        m = _find(n.status, name)
        if m is None:
            return NodeModuleView(
                node_id,
                NOT_CONFIGURED,
                "",
                Colour.GREY,
                True,
                False,
                reason=f"{name} is not in {node_id}'s configuration",
            )
        source, r = resync_of(self, node_id, name, m)
        resync = _resync_view(r, source)
        checkers = tuple(
            CheckerView(node_id, c.name, c.kind, c.ok, c.detail, c.consecutive_failures, c.action)
            for c in m.checkers
        )
        dp = data_plane_view(m)
        colour = state_colour(m.state, m.readiness)
        if (forced := data_plane_colour(dp)) is not None:  # down: whatever the state says
            colour = worst([colour, forced])
        build = n.status.version if n.status is not None else ""
        giving = self._giving(node_id, name, m)
        badges = node_badges(m, node_id, resync, giving, checkers, dp, build)
        return NodeModuleView(
            node_id=node_id,
            label=state_name(m.state),
            readiness=readiness_name(m.readiness),
            colour=colour,
            reachable=True,
            configured=True,
            primary=is_primary(m.state),
            uptodate=m.uptodate,
            degraded=m.degraded,
            split_brain=m.split_brain,
            reason=m.reason,
            last_rule=m.last_rule,
            vip_held=m.vip_held,
            resource_running=m.resource_running,
            state_since=m.state_since,
            resync=resync,
            checkers=checkers,
            badges=badges,
            peer_label=state_name(m.peer_state) if m.peer_state else "",
            peer_readiness=readiness_name(m.peer_readiness),
            data_plane=dp,
        )

    def _giving(self, node_id: str, name: str, m: pb.ModuleStatus) -> PeerResync | None:
        """The resync this node, a primary, gives its peer: the peer is SECOND Transient
        (the progress may not be published yet: the copies are being compared)."""
        peer = other_node(node_id)
        pm = self.module_status(peer, name)
        if not is_primary(m.state) or pm is None:
            return None
        if (pm.state, pm.readiness) != (pb.STATE_SECOND, pb.READINESS_TRANSIENT):
            return None
        source, r = resync_of(self, peer, name, pm)
        view = _resync_view(r, source)
        return PeerResync(peer, view if view is not None and view.active else None)


def resync_of(
    model: ClusterModel, node_id: str, name: str, m: pb.ModuleStatus
) -> tuple[str, pb.ResyncProgress | None]:
    """The resynchronization of ``node_id``'s copy of ``name``: (the node it copies from,
    its progress). The primary publishes the progress of the resync it sends; it is shown
    on the node being resynchronized. (A node that reports one while not primary reports
    its own.)"""
    if not is_primary(m.state) and (m.resync.active or m.resync.bytes_total):
        return other_node(node_id), m.resync
    peer = other_node(node_id)
    pm = _find(model.status(peer), name) if model.reachable(peer) else None
    if pm is not None and is_primary(pm.state) and (pm.resync.active or pm.resync.bytes_total):
        return peer, pm.resync
    return "", None


def _resync_view(r: pb.ResyncProgress | None, source: str) -> ResyncView | None:
    if r is None:
        return None
    return ResyncView(r.active, r.bytes_done, r.bytes_total, r.rate_bytes_per_s, r.eta_s, source)


def _find(status: pb.NodeStatus | None, name: str) -> pb.ModuleStatus | None:
    if status is None:
        return None
    return next((m for m in status.modules if m.name == name), None)
