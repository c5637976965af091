"""What a server column's header says of the server's reach and its peer (pure)."""

from __future__ import annotations

from console.model.views import NodeView


def reach_text(view: NodeView) -> str:
    """ "online · peer answering", "online · peer's agent restarting (14 s)", ...

    While the peer's agent restarts leaving its modules running, the peer counts as alive
    on its word, not on heartbeats (the link chips show them silent): say so, and for how
    long, rather than "answering"."""
    if view.connecting:
        return "connecting…"
    if not view.reachable:
        return "NOT ANSWERING"
    if view.peer_alive and view.peer_leaving_s > 0:
        return f"online · peer's agent restarting ({view.peer_leaving_s:.0f} s left)"
    peer = {True: "peer answering", False: "peer silent", None: ""}[view.peer_alive]
    return f"online · {peer}" if peer else "online"
