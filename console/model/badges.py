"""The badges beside a node's state pill on a module card (DESIGN §3 "detail badges"):
what the state alone does not say -- split brain, no secondary, replication failed, a
resync and how far it is, whether the copy is current, failing checkers, a data plane
that is down (or of another build than the agent)."""

from __future__ import annotations

from dataclasses import dataclass

from console.model.data_plane import data_plane_badges
from console.model.states import Colour
from console.model.views import Badge, CheckerView, DataPlaneView, ResyncView
from protos import mirrorpair_pb2 as pb


@dataclass(frozen=True)
class PeerResync:
    """The resync this node (a primary) gives its peer, as far as the console knows."""

    peer: str
    progress: ResyncView | None  # None: the peer rejoins, no progress published yet


def node_badges(
    m: pb.ModuleStatus,
    node_id: str,
    receiving: ResyncView | None,
    giving: PeerResync | None,
    checkers: tuple[CheckerView, ...],
    data_plane: DataPlaneView | None = None,
    agent_build: str = "",
) -> tuple[Badge, ...]:
    """``receiving``: the resync of this node's copy; ``giving``: the resync this primary
    sends to its peer (the peer is SECOND Transient); ``agent_build``: the node's agent
    version (a data plane of another build is named)."""
    out: list[Badge] = []
    if m.split_brain:
        out.append(
            Badge("split brain", Colour.RED, "both nodes wrote independently; choose the survivor")
        )
    out += data_plane_badges(data_plane, node_id, m.name, agent_build)
    if m.state == pb.STATE_ALONE:
        out.append(
            Badge(
                "not protected",
                Colour.ORANGE,
                f"{node_id} serves {m.name} without a secondary: its writes are not copied, "
                f"and a failure of {node_id} stops {m.name}",
            )
        )
    if giving is not None:
        # A resync under way is what the operator must see, not "degraded": the failure
        # that started it is over, the copy is being rebuilt.
        out.append(_giving_badge(m, giving))
    elif m.degraded:
        out.append(
            Badge(
                "degraded",
                Colour.RED,
                "replication to the secondary failed: running without a copy",
            )
        )
    if receiving is not None and receiving.active:
        tip = f"resynchronizing from {receiving.source}" if receiving.source else ""
        out.append(Badge(receiving.summary(), Colour.ORANGE, tip))
    elif m.state == pb.STATE_SECOND and m.readiness == pb.READINESS_TRANSIENT:
        out.append(
            Badge(
                "resync starting",
                Colour.ORANGE,
                "comparing this copy with the primary's before sending what differs",
            )
        )
    if m.uptodate:
        out.append(Badge("up to date", Colour.GREEN, "this node's copy is complete and current"))
    else:
        out.append(
            Badge(
                "not up to date",
                Colour.ORANGE,
                "this node's copy is not current: it cannot become primary alone",
            )
        )
    for c in checkers:
        if not c.ok:
            out.append(Badge(f"{c.name} failing", Colour.ORANGE, c.detail))
    return tuple(out)


def _giving_badge(m: pb.ModuleStatus, giving: PeerResync) -> Badge:
    p = giving.progress
    pct = p.percent if p is not None else None
    text = f"resyncing {giving.peer}" + (f" {pct:.0f}%" if pct is not None else "")
    tip = (
        f"{giving.peer}'s copy is being resynchronized from here: until it is complete, "
        f"{m.name} has no up-to-date second copy"
    )
    if m.degraded:
        tip += f" (replication to {giving.peer} had failed; the agent still reports degraded)"
    return Badge(text, Colour.ORANGE, tip)
