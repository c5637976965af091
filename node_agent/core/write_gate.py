"""May a primary acknowledge writes its peer lacks? (docs/replication.md, "Holding writes")

While the pair replicates synchronously, the secondary holds a current copy and takes over
on its own if the primary goes silent. When the stream breaks, the writes in flight and
every write after them exist only here: acknowledging them is safe only once the peer can
no longer serve without them. Until then the replicator *holds* them (the application
blocks), and this pure rule, re-evaluated after every decision, says when to let go:

- OPEN: the peer acknowledged the outdate token of this break (it promised not to serve
  its copy), or the peer is silent and this node went on ALONE, in a generation newer
  than the one of the break, with the witness answering (the peer-loss rules decided: a
  peer that took over too has a diverged history, a split brain that this node --
  primary first -- survives), or an admin forced it (`prim`);
- FENCE: this node is no longer (or is ceasing to be) the primary: the held writes fail
  with EIO, and so does everything after them;
- HOLD: not decided yet.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from node_agent.core.env import Env, PeerView
from node_agent.core.states import Readiness, State

if TYPE_CHECKING:
    from node_agent.core.machine import ModuleMachine


class Gate(Enum):
    OPEN = "open"
    HOLD = "hold"
    FENCE = "fence"


def write_gate(m: ModuleMachine, env: Env, hold: str) -> Gate:
    """The fate of the writes held since the break named ``hold`` (its outdate token)."""
    if not m.state.is_primary:
        return Gate.FENCE
    if m.forced_primary:
        return Gate.OPEN
    if not hold or m.hold_seen != hold:
        return Gate.HOLD  # the automaton has not taken this break in yet
    if m.peer_outdated == hold:
        return Gate.OPEN
    newer = m.facts.generations[-1:] != (m.hold_generation,)
    if env.peer is None and m.state is State.ALONE and env.witness_allows_takeover and newer:
        return Gate.OPEN
    if m.stopping or m.handing_over:
        return Gate.FENCE  # the resource is going down anyway: do not wait for the peer
    return Gate.HOLD


def owed_at_stop(state: State, readiness: Readiness, replicated: bool) -> bool:
    """Which modules a stopping agent waits for (``owes_promise``): those whose copy the
    primary is feeding synchronously -- a Ready secondary with replicated directories.
    A module without directories has no stream, so no token will ever come; a
    resyncing one is mostly not bound yet (its break holds nothing): waiting for those
    would only make every stop longer."""
    return replicated and state is State.SECOND and readiness is Readiness.READY


def owes_promise(peer: PeerView | None, outdated_ack: str, ack_before: str) -> bool:
    """A stopping agent's module that was a current secondary: must this node stay until
    the primary has its promise (the echo of its outdate token) and took it?

    Once stopped, the copy is no longer fed: the primary's stream breaks and its writes are
    held until the echo comes -- or until the peer-loss timeout if this agent exits first
    (measured: every fsync blocked 3.0 s with the default 3 s, at each clean stop of the
    secondary's agent). So the agent stays until the primary showed that it took the
    echo (it clears its token; the echo rides on every heartbeat until then, so a lost
    datagram costs a pulse, not a timeout). Nothing is owed to a silent peer or to one no
    longer primary. ``ack_before``: this node's echo when the stop began (an older
    break's): a token not echoed yet is still owed, the break is on its way.
    """
    if peer is None or not peer.state.is_primary:
        return False
    if outdated_ack == ack_before:
        return True
    return peer.outdate == outdated_ack
