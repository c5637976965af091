"""Module states and readiness (DESIGN §3), mirrored 1:1 by the proto enums."""

from __future__ import annotations

from enum import Enum

from protos import mirrorpair_pb2 as pb


class State(Enum):
    STOP = pb.STATE_STOP
    WAIT = pb.STATE_WAIT
    ALONE = pb.STATE_ALONE
    PRIM = pb.STATE_PRIM
    SECOND = pb.STATE_SECOND
    UP = pb.STATE_UP  # reserved for the farm kind

    @property
    def is_primary(self) -> bool:
        return self in (State.ALONE, State.PRIM)

    @property
    def exit_code(self) -> int:
        """`mirrorpair state MODULE` exit code, for scripts."""
        return _EXIT_CODES[self]


_EXIT_CODES = {
    State.STOP: 0,
    State.WAIT: 1,
    State.ALONE: 2,
    State.PRIM: 3,
    State.SECOND: 4,
    State.UP: 5,
}


class Readiness(Enum):
    NOT_READY = pb.READINESS_NOT_READY
    TRANSIENT = pb.READINESS_TRANSIENT
    READY = pb.READINESS_READY
