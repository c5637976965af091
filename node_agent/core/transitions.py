"""The one table of allowed state transitions, and the record each change leaves."""

from __future__ import annotations

from dataclasses import dataclass

from node_agent.core.states import Readiness, State

ALLOWED: dict[State, frozenset[State]] = {
    # STOP -> PRIM: only an agent restart adopting a data plane that kept serving.
    State.STOP: frozenset({State.WAIT, State.SECOND, State.ALONE, State.PRIM}),
    State.WAIT: frozenset({State.STOP, State.ALONE, State.SECOND}),
    State.ALONE: frozenset({State.PRIM, State.WAIT, State.STOP}),
    State.PRIM: frozenset({State.ALONE, State.WAIT, State.STOP}),
    State.SECOND: frozenset({State.ALONE, State.PRIM, State.WAIT, State.STOP}),
    State.UP: frozenset({State.WAIT, State.STOP}),  # farm kind, later
}


# Causes of the normal course of things -- starting, electing, pairing, resynchronizing,
# an operator's command: a WAIT or ALONE they lead to is logged as INFO, not WARNING.
ROUTINE_CAUSES = frozenset(
    {"start", "elected", "peer-primary", "peer-second", "resync-done", "resource", "swap",
     "migrate", "stop", "stopstart", "second", "defaultprim", "survivor-chosen", "adopted"}
)  # fmt: skip


def transition_level(state: State, cause: str) -> str:
    """WARNING for a WAIT or ALONE that something went wrong to cause; INFO otherwise."""
    alarming = state in (State.WAIT, State.ALONE) and cause not in ROUTINE_CAUSES
    return "WARNING" if alarming else "INFO"


class InvalidTransition(RuntimeError):
    """A rule tried a transition outside the table: a bug, never user input."""


def check(old: State, new: State) -> None:
    if old is not new and new not in ALLOWED[old]:
        raise InvalidTransition(f"{old.name} -> {new.name} is not an allowed transition")


@dataclass(frozen=True)
class LogRecord:
    time: float
    module: str
    level: str  # DEBUG, INFO, WARNING, ERROR
    message: str
    cause: str = ""  # rule name or command
    who: str = ""  # who issued the command
    old_state: State | None = None
    new_state: State | None = None
    old_readiness: Readiness | None = None
    new_readiness: Readiness | None = None
