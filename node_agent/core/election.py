"""Who becomes primary when both nodes look for a role (pure, symmetric).

Both nodes run these functions on mirror-image inputs; each must reach the same
answer, or two primaries could start. The hypothesis tests check the symmetry.
"""

from __future__ import annotations

from enum import Enum

from node_agent.core.generations import Relation, divergence_start


class Choice(Enum):
    ME = "me"
    PEER = "peer"
    NOBODY = "nobody"


def elect(
    rel: Relation,
    my_uptodate: bool,
    peer_can_serve: bool,
    i_am_preferred: bool,
) -> Choice:
    """Pick the primary among two related (not diverged) copies.

    peer_can_serve: the peer is up to date and free to be elected right now.
    """
    if rel is Relation.LOCAL_NEWER:
        return Choice.ME if my_uptodate else Choice.NOBODY
    if rel is Relation.PEER_NEWER:
        return Choice.PEER if peer_can_serve else Choice.NOBODY
    if rel is Relation.DIVERGED:
        raise ValueError("diverged copies are a split brain, not an election")
    if my_uptodate and peer_can_serve:
        return Choice.ME if i_am_preferred else Choice.PEER
    if my_uptodate:
        return Choice.ME
    if peer_can_serve:
        return Choice.PEER
    return Choice.NOBODY


def primary_first(
    mine: tuple[str, ...],
    theirs: tuple[str, ...],
    my_primary_since: float,
    peer_primary_since: float,
    i_am_preferred: bool,
    concurrent_s: float = 0.0,
) -> bool:
    """True when we were primary first: on a split brain that node keeps the role.

    The node whose history diverged first (it went on alone earlier). Histories that
    diverged within ``concurrent_s`` of each other (the peer timeout: a partition makes
    both nodes decide at once) are concurrent: then the node primary for longer -- the
    one that was serving, not the secondary that took over -- keeps the role."""
    my_start = divergence_start(mine, theirs)
    peer_start = divergence_start(theirs, mine)
    if my_start != peer_start and abs(my_start - peer_start) > concurrent_s:
        return my_start < peer_start
    if my_primary_since != peer_primary_since:
        return my_primary_since < peer_primary_since
    return i_am_preferred
