"""Data generations, like DRBD's generation identifiers (DESIGN §3).

A new generation starts each time a node becomes primary without a peer. Each
node keeps its history, oldest first. Comparing the two histories tells which
copy is newer, whether one descends from the other (a plain resync), or whether
both wrote independently (split brain). Pure: ids and time are passed in.
"""

from __future__ import annotations

from enum import Enum

MAX_HISTORY = 32  # enough to relate two nodes after many failovers


class Relation(Enum):
    SAME = "same"  # identical latest generation
    LOCAL_NEWER = "local newer"  # the peer's latest is in our history: we descend from it
    PEER_NEWER = "peer newer"  # our latest is in the peer's history
    DIVERGED = "diverged"  # both started generations the other lacks: split brain


def new_generation_id(now: float, node_id: str, nonce: int) -> str:
    """Sortable by start time; the nonce keeps ids unique within one millisecond."""
    return f"{int(now * 1000):013d}-{node_id}-{nonce & 0xFFFFFFFF:08x}"


def generation_time(gen_id: str) -> float:
    """Start time (unix seconds) encoded in a generation id."""
    try:
        return int(gen_id.split("-", 1)[0]) / 1000.0
    except ValueError:
        return 0.0


def append(history: tuple[str, ...], gen_id: str) -> tuple[str, ...]:
    return (*history, gen_id)[-MAX_HISTORY:]


def compare(mine: tuple[str, ...], theirs: tuple[str, ...]) -> Relation:
    if mine[-1:] == theirs[-1:]:
        return Relation.SAME
    if not theirs or theirs[-1] in mine:
        return Relation.LOCAL_NEWER
    if not mine or mine[-1] in theirs:
        return Relation.PEER_NEWER
    return Relation.DIVERGED


def divergence_start(mine: tuple[str, ...], theirs: tuple[str, ...]) -> float:
    """Start time of our first generation the peer does not have (inf if none)."""
    common = set(theirs)
    for gen in mine:
        if gen not in common:
            return generation_time(gen)
    return float("inf")
