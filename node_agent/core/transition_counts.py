"""How often a module changed state on this node, and how often this node took it over
from a lost peer: counted from the automaton's transition records (pure; the metrics
endpoint shows them, docs/metrics.md).

A *failover* is this node taking over a module its peer served: SECOND -> ALONE,
whatever the rule (``peer-lost``: the peer fell silent on every link; ``peer-not-primary``:
the peer is up but no longer serves it, e.g. its application failed there; ``prim``: an
administrator forced it). The alerts use the same test (node_agent/alerts/policy.py). Not
failovers: a primary losing its secondary (PRIM -> ALONE, the module did not move), a
planned swap (SECOND -> PRIM), and a node that stepped down only for the witness serving
again (WAIT -> ALONE by ``witness-back``: it was ALONE before).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from node_agent.core.states import State
from node_agent.core.transitions import LogRecord

# The causes whose series exist at 0 from the start (an alert rule's increase() needs them).
FAILOVER_CAUSES = frozenset({"peer-lost", "peer-not-primary", "prim"})


def is_failover(old: State | None, new: State | None) -> bool:
    return old is State.SECOND and new is State.ALONE


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
        if is_failover(old, new):
            self.failovers[rec.cause] += 1

    def copy(self) -> TransitionCounts:
        return TransitionCounts(Counter(self.transitions), Counter(self.failovers))
