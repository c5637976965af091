"""Translations between the automaton's types and the proto messages."""

from __future__ import annotations

from node_agent.core.env import PeerView
from node_agent.core.machine import ModuleMachine
from node_agent.core.states import Readiness, State
from protos import heartbeat_pb2 as hpb


def view_to_pb(name: str, view: PeerView, config_version: int) -> hpb.PeerModuleView:
    return hpb.PeerModuleView(
        name=name,
        state=view.state.value,
        readiness=view.readiness.value,
        uptodate=view.uptodate,
        generations=list(view.generations),
        primary_since=view.primary_since,
        handover=view.handover,
        swap_request=view.swap_request,
        split_brain=view.split_brain,
        config_version=config_version,
        candidate=view.candidate,
        resource_up=view.resource_up,
        fullsync=view.fullsync,
        outdate=view.outdate,
        outdated=view.outdated,
        kept_over=view.kept_over,
    )


def view_from_pb(msg: hpb.PeerModuleView) -> PeerView | None:
    """None for a view we cannot interpret (a newer peer with an unknown state)."""
    try:
        state, readiness = State(msg.state), Readiness(msg.readiness)
    except ValueError:
        return None
    return PeerView(
        state=state,
        readiness=readiness,
        uptodate=msg.uptodate,
        generations=tuple(msg.generations),
        primary_since=msg.primary_since,
        handover=msg.handover,
        swap_request=msg.swap_request,
        split_brain=msg.split_brain,
        candidate=msg.candidate,
        resource_up=msg.resource_up,
        fullsync=msg.fullsync,
        outdate=msg.outdate,
        outdated=msg.outdated,
        kept_over=msg.kept_over,
    )


def machine_fingerprint(m: ModuleMachine) -> tuple:
    """What the peer or a watcher would notice changing."""
    return (m.view(), m.reason, m.degraded, m.last_rule)
