"""How often a module changed state on this node, and how often this node took it over
from a lost peer: counted from the automaton's transition records (pure; the metrics
endpoint shows them, docs/metrics.md).

A *failover* here is this node becoming primary (ALONE or PRIM) from a state that did
not serve (SECOND, WAIT) because the peer was lost: the rules ``peer-lost`` (a secondary
takes over when every heartbeat link fell silent) and ``witness-back`` (a node that had
lost the peer and the witness takes over once the witness answers again). A primary
that merely loses its secondary (PRIM -> ALONE) is a transition, not a failover: the
module did not move.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from node_agent.core.states import State
from node_agent.core.transitions import LogRecord

FAILOVER_CAUSES = frozenset({"peer-lost", "witness-back"})


def is_failover(old: State, new: State, cause: str) -> bool:
    return new.is_primary and not old.is_primary and cause in FAILOVER_CAUSES


@dataclass
class TransitionCounts:
    """Counters of one module on one node, since the agent (or the module) started."""

    # (new state name, cause) -> transitions into that state for that cause
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)
    failovers: Counter[str] = field(default_factory=Counter)  # cause -> takeovers

    def record(self, rec: LogRecord) -> None:
        """Count ``rec`` if it is a change of state (readiness-only changes are not)."""
        old, new = rec.old_state, rec.new_state
        if old is None or new is None or old is new:
            return
        self.transitions[(new.name, rec.cause)] += 1
        if is_failover(old, new, rec.cause):
            self.failovers[rec.cause] += 1

    def copy(self) -> TransitionCounts:
        return TransitionCounts(Counter(self.transitions), Counter(self.failovers))
