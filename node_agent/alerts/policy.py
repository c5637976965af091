"""Which module state transitions become alerts to the operator (docs/alerts.md). Pure:
no clock of its own (every call is given the time), no I/O.

Both nodes run the same configuration, and each reports what it sees itself:

- **failover**: this node took the module over (SECOND -> ALONE), at once;
- **split-brain**: this node found that both wrote independently and stepped down, at once;
- **degraded**: this node serves the module without a synchronized secondary (ALONE, or
  PRIM while the secondary is not ready) for ``settle_s`` -- a secondary back within that
  time (a brief link hiccup, the pair starting) sends nothing;
- **restored**: after any of those, the pair has been in sync (this node PRIM or SECOND,
  Ready) for ``settle_s``, doubled for each "restored" of the module in the last hour
  (at most 32 times): a flapping pair sends fewer and fewer mails, and never "restored"
  while it is not.

Between two "restored" each kind is sent at most once per module ("an episode"), and a
failover already says there is no secondary (no "degraded" after it). A module stopped
on this node ends its episode silently: this node no longer speaks for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from node_agent.core.states import Readiness, State
from node_agent.core.transition_counts import is_failover

FLAP_WINDOW_S = 3600.0
MAX_BACKOFF_DOUBLINGS = 5


class AlertKind(StrEnum):
    FAILOVER = "failover"
    DEGRADED = "degraded"
    SPLIT_BRAIN = "split-brain"
    RESTORED = "restored"


LOSSES = frozenset({AlertKind.FAILOVER, AlertKind.DEGRADED, AlertKind.SPLIT_BRAIN})


@dataclass(frozen=True)
class Transition:
    """One logged state change of a module on this node (core/transitions.LogRecord)."""

    time: float
    module: str
    old_state: State
    new_state: State
    new_readiness: Readiness
    cause: str = ""
    reason: str = ""
    who: str = ""


@dataclass(frozen=True)
class Alert:
    kind: AlertKind
    module: str
    node: str  # the node sending it (the one that saw it)
    peer: str
    state: str  # this node's state then, e.g. "ALONE/READY"
    cause: str  # the rule or command of the transition behind it
    message: str
    time: float


def redundant(state: State, readiness: Readiness) -> bool:
    """This node is half of a pair in sync: primary with a ready secondary, or that
    secondary."""
    return state in (State.PRIM, State.SECOND) and readiness is Readiness.READY


def unprotected(state: State, readiness: Readiness) -> bool:
    """This node serves the module and no secondary has a current copy."""
    return state.is_primary and not redundant(state, readiness)


@dataclass
class _Track:
    state: State = State.STOP
    readiness: Readiness = Readiness.NOT_READY
    cause: str = ""
    reason: str = ""
    episode: set[AlertKind] = field(default_factory=set)  # kinds sent since "restored"
    unprotected_since: float | None = None
    redundant_since: float | None = None
    restored_at: list[float] = field(default_factory=list)


class AlertPolicy:
    """Feed it every transition (``observe``) and call ``due`` regularly (timers)."""

    def __init__(self, node: str, peer: str, settle_s: float = 30.0,
                 events: frozenset[str] | None = None) -> None:  # fmt: skip
        self.node, self.peer = node, peer
        self.settle_s = settle_s  # may be changed between calls (a new configuration)
        self.events = frozenset(AlertKind) if events is None else frozenset(events)
        self._modules: dict[str, _Track] = {}

    def restored_delay(self, module: str, now: float) -> float:
        """How long the pair must stay in sync before "restored" is sent."""
        tr = self._modules.get(module)
        recent = [t for t in tr.restored_at if now - t < FLAP_WINDOW_S] if tr else []
        return self.settle_s * 2 ** min(len(recent), MAX_BACKOFF_DOUBLINGS)

    def observe(self, t: Transition) -> list[Alert]:
        tr = self._modules.setdefault(t.module, _Track())
        tr.state, tr.readiness = t.new_state, t.new_readiness
        tr.cause, tr.reason = t.cause, t.reason
        out: list[Alert] = []
        if t.new_state is State.STOP:
            tr.episode.clear()
            tr.unprotected_since = tr.redundant_since = None
            return out
        if is_failover(t.old_state, t.new_state):
            text = (f"module {t.module}: {self.node} took over ({t.reason}); it runs without "
                    "a secondary")  # fmt: skip
            out += self._send(tr, AlertKind.FAILOVER, t.module, t.time, text)
        if t.new_state is State.WAIT and t.cause == "split-brain":
            text = (f"module {t.module}: split brain -- {self.node} and {self.peer} both "
                    f"wrote independently; {self.node} does not serve it. Choose the "
                    "survivor (docs/alerts.md)")  # fmt: skip
            out += self._send(tr, AlertKind.SPLIT_BRAIN, t.module, t.time, text)
        if unprotected(tr.state, tr.readiness):
            tr.redundant_since = None
            if tr.unprotected_since is None:
                tr.unprotected_since = t.time
        elif redundant(tr.state, tr.readiness):
            tr.unprotected_since = None
            if tr.redundant_since is None:
                tr.redundant_since = t.time
        else:
            tr.unprotected_since = tr.redundant_since = None
        return out

    def due(self, now: float) -> list[Alert]:
        """Alerts whose time has come (a state that lasted ``settle_s``)."""
        out: list[Alert] = []
        for name, tr in self._modules.items():
            since = tr.unprotected_since
            if (
                since is not None
                and now - since >= self.settle_s
                and not (tr.episode & {AlertKind.FAILOVER, AlertKind.DEGRADED})
            ):
                peer = "the secondary is not in sync" if tr.state is State.PRIM else "no secondary"
                text = (f"module {name}: {self.node} serves it without redundancy ({peer}) "
                        f"for {now - since:.0f} s: {tr.reason}")  # fmt: skip
                out += self._send(tr, AlertKind.DEGRADED, name, now, text)
            since = tr.redundant_since
            settled = since is not None and now - since >= self.restored_delay(name, now)
            if settled and tr.episode & LOSSES:
                primary = self.node if tr.state is State.PRIM else self.peer
                secondary = self.peer if tr.state is State.PRIM else self.node
                text = (f"module {name}: redundancy restored -- {primary} PRIM with "
                        f"{secondary} SECOND in sync")  # fmt: skip
                out += self._send(tr, AlertKind.RESTORED, name, now, text)
                tr.episode.clear()
                tr.restored_at = [t for t in tr.restored_at if now - t < FLAP_WINDOW_S]
                tr.restored_at.append(now)
        return out

    def memory(self) -> dict[str, tuple[list[str], list[float]]]:
        """What was sent, per module with an open episode: (its kinds, the times of its
        recent "restored"), to outlive an agent restart (memory.py)."""
        return {name: (sorted(k.value for k in tr.episode), list(tr.restored_at))
                for name, tr in self._modules.items() if tr.episode or tr.restored_at}  # fmt: skip

    def remember(self, module: str, kinds: list[str], restored_at: list[float]) -> None:
        """Take up a module's episode from before a restart: no second "degraded" for a
        module still alone, and a "restored" once it is in sync again."""
        tr = self._modules.setdefault(module, _Track())
        tr.episode = {AlertKind(k) for k in kinds if k in AlertKind._value2member_map_}
        tr.restored_at = list(restored_at)

    def _send(self, tr: _Track, kind: AlertKind, module: str, now: float,
              text: str) -> list[Alert]:  # fmt: skip
        if kind in tr.episode:
            return []
        tr.episode.add(kind)  # also when filtered out: "restored" still follows it
        if kind.value not in self.events:
            return []
        state = f"{tr.state.name}/{tr.readiness.name}"
        return [Alert(kind, module, self.node, self.peer, state, tr.cause, text, now)]
