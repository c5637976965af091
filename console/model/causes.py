"""What the rule or command behind a transition means to an operator: routine (start-up,
pairing, resync, an operator's command) or something that went wrong (DESIGN §3 lists
the rules; the agent reports them as each transition's cause and as `last_rule`)."""

from __future__ import annotations

from console.model.states import Colour, state_colour

# Someone asked for it (the agent's own hand-over for `defaultprim` included).
COMMAND_CAUSES = frozenset(
    {"start", "stop", "restart", "stopstart", "forcestop", "swap", "migrate", "second",
     "defaultprim"}
)  # fmt: skip
# The normal course of starting, electing, pairing and resynchronizing.
ROUTINE_CAUSES = frozenset(
    {"elected", "peer-primary", "peer-second", "resync-done", "resource", "peer-not-primary",
     "peer-not-second", "start-alone", "witness-back"}
)  # fmt: skip
NORMAL_CAUSES = COMMAND_CAUSES | ROUTINE_CAUSES
# A primary that left the role for one of these handed the module over on purpose.
PLANNED_LEAVE_CAUSES = frozenset({"stop", "stopstart", "forcestop", "swap", "migrate",
                                  "defaultprim"})  # fmt: skip
# A node that became primary for one of these took over by a planned move.
PLANNED_TAKEOVER_CAUSES = frozenset({"swap", "migrate", "defaultprim"})


def cause_of(rule: str) -> str:
    """'stop by root@desk (mirrorpair CLI)' -> 'stop': the agent appends who issued a
    command to the rule it reports."""
    return rule.split(" by ", 1)[0].strip()


def who_of(rule: str) -> str:
    """'stop by root@desk' -> 'root@desk'; '' when no one is named."""
    parts = rule.split(" by ", 1)
    return parts[1].strip() if len(parts) == 2 else ""


def is_normal(cause: str) -> bool:
    return cause_of(cause) in NORMAL_CAUSES


def transition_colour(new_state: int, new_readiness: int, cause: str) -> Colour:
    """The colour of a state entered, as the timeline shows it: the state's colour
    (DESIGN §3), except that a stopped or waiting state reached in the normal course of
    things (start-up election, an operator's stop) is grey, not the red of an alarm.
    An unknown cause keeps the state's colour: the console does not guess it is fine."""
    colour = state_colour(new_state, new_readiness)
    if colour is Colour.RED and is_normal(cause):
        return Colour.GREY
    return colour
