"""History sync: a heartbeat does not grow with each module's generation history (DESIGN §4).

Pure logic, no I/O. Every view a node sends describes its module's whole history by a
``Summary`` (length, latest id, a short digest). The whole history travels only while
the peer does not hold it: each view also says which history of the *receiver* its
sender holds (``peer_history_digest``; omitted when equal to its own), so a sender
knows, from the peer's last view, whether a summary is enough (``needs_full``).

The receiver completes a summary from histories it knows (``complete``): the last one
it completed for that module, its own history of the module (identical whenever both
have the same latest generation: a generation is only ever copied whole), and each of
these with the summary's latest id appended (the peer started one generation since).
A candidate counts only if length, latest id and digest all match. When none does,
the view is NOT completed: the caller keeps the previous complete view of the module
(or none), exactly as if that datagram had been lost, and its next heartbeat says what
it holds, so the sender sends the whole history at its next pulse. So the automaton
never sees a history the peer did not have: ``generations.compare`` and
``divergence_start`` give the answers they give with whole histories (a wrong
PEER_NEWER/DIVERGED would be a false split brain or a wrong resync direction).

Digest: 8 bytes of BLAKE2b over the length-prefixed ids. Peers authenticate each
other (HMAC), so only an accidental collision matters: 2**-64 per comparison.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from node_agent.core import generations as gens

DIGEST_LEN = 8

History = tuple[str, ...]


@lru_cache(maxsize=4096)
def digest(history: History) -> bytes:
    """Digest of a whole history, oldest first (cached: a node asks for the same few
    histories every pulse)."""
    h = hashlib.blake2b(digest_size=DIGEST_LEN)
    for gen in history:
        raw = gen.encode()
        # Length-prefixed: ("ab", "c") and ("a", "bc") must not collide.
        h.update(len(raw).to_bytes(4, "big"))
        h.update(raw)
    return h.digest()


@dataclass(frozen=True)
class Summary:
    """What every view says of its sender's history."""

    length: int
    latest: str
    digest: bytes

    @classmethod
    def of(cls, history: Sequence[str]) -> Summary:
        history = tuple(history)
        return cls(len(history), history[-1] if history else "", digest(history))

    def matches(self, history: History) -> bool:
        if len(history) != self.length:
            return False
        if history and history[-1] != self.latest:
            return False
        return digest(history) == self.digest


def complete(summary: Summary, known: Iterable[History | None]) -> History | None:
    """The history ``summary`` describes, built from histories we know, or None.

    ``known``: the peer's history we last completed for this module, our own history of
    the module (either may be None). Each is also tried with ``summary.latest`` appended
    (as ``generations.append`` does, keeping the newest MAX_HISTORY).
    """
    if summary.length == 0:
        return () if summary.matches(()) else None
    for base in known:
        if base is None:
            continue
        for candidate in (base, gens.append(base, summary.latest)):
            if summary.matches(candidate):
                return candidate
    return None


def needs_full(mine: Summary, peer_holds: bytes | None, before: History | None = None) -> bool:
    """Whether a view must carry our whole history: the peer cannot complete it.

    ``peer_holds``: the digest of our history the peer said it holds (its last view of
    the module, from its current boot); None if we have no such view. ``before``: our
    history before its last change. If the peer holds that one and we only started a
    generation since (a failover), the peer completes ours by appending the latest id.
    """
    if peer_holds == mine.digest:
        return False
    return not (
        before is not None
        and mine.length > 0
        and peer_holds == digest(before)
        and digest(gens.append(before, mine.latest)) == mine.digest
    )


def holds_field(held: History | None, own: Summary) -> bytes:
    """``peer_history_digest`` for a view we send: the digest of a history of the peer
    we can complete its summaries to -- the last one we completed, or else our own (a
    candidate too: right after a restart the peer's history usually is ours). Omitted
    (empty) when that is our own history's digest, the usual case of a pair in sync:
    the peer then reads it from ``history_digest``."""
    if held is None:
        return b""
    held_digest = digest(held)
    return b"" if held_digest == own.digest else held_digest


def holds_from_view(history_digest: bytes, peer_history_digest: bytes) -> bytes:
    """The inverse of ``holds_field`` on the receiving side."""
    return peer_history_digest or history_digest
