"""The inputs the module automaton decides on: what it knows of the peer, and time."""

from __future__ import annotations

from dataclasses import dataclass

from node_agent.core.states import Readiness, State


@dataclass(frozen=True)
class PeerView:
    """One module as a node advertises it in every heartbeat (both directions)."""

    state: State
    readiness: Readiness
    uptodate: bool
    generations: tuple[str, ...]
    primary_since: float = 0.0  # wall time it last became primary; 0 when not primary
    handover: bool = False  # primary stopped everything for a swap: the peer takes over
    swap_request: bool = False  # secondary asks its primary to hand over
    split_brain: bool = False
    candidate: bool = False  # WAIT, started, free to be elected primary
    resource_up: bool = False
    fullsync: bool = False  # a resyncing secondary asked for a full compare
    # The outdate handshake (docs/replication.md, "Holding writes"): a primary whose
    # synchronous replication broke asks its peer to stop claiming a current copy
    # (``outdate``: a token fresh for each break); the peer echoes the token in
    # ``outdated`` once its copy no longer counts as current. Only then may the primary
    # acknowledge writes the peer lacks.
    outdate: str = ""
    outdated: str = ""
    kept_over: str = ""  # see Facts.kept_over


# What a peer that does not have the module configured looks like.
UNCONFIGURED = PeerView(State.STOP, Readiness.NOT_READY, False, ())


@dataclass(frozen=True)
class Env:
    now: float  # wall-clock seconds; the automaton has no clock of its own
    peer: PeerView | None  # None: every heartbeat link silent for the timeout
    witness_configured: bool = False
    witness_ok: bool = False  # not lost: failures, if any, span less than the grace
    witness_answering: bool = False  # the last probe succeeded

    @property
    def witness_blocks(self) -> bool:
        """A configured witness lost for the grace period: stop serving without the peer."""
        return self.witness_configured and not self.witness_ok

    @property
    def witness_allows_takeover(self) -> bool:
        """Taking over needs a witness that answers now, not one merely within its grace
        (a cut that took both the peer and the witness must not start a new primary)."""
        return not self.witness_configured or self.witness_answering
