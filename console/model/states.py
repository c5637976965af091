"""State names, readiness and the colour rules of DESIGN §3 (what the console shows)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum, StrEnum

from protos import mirrorpair_pb2 as pb

ERROR = "ERROR"  # the node does not answer
NOT_CONFIGURED = "NOT CONFIGURED"  # the module is not in that node's config
CONNECTING = "CONNECTING"  # no answer yet, no failure yet (the first seconds)
UNKNOWN = "UNKNOWN"  # the agent answered with a state this console does not know

PRIMARY_STATES = frozenset({pb.STATE_ALONE, pb.STATE_PRIM, pb.STATE_UP})


class Colour(StrEnum):
    GREEN = "green"
    ORANGE = "orange"
    RED = "red"
    GREY = "grey"


class _Rank(IntEnum):
    # Grey (nothing to say) ranks below green so that one unconfigured module does not
    # hide an all-green cluster; red is the worst.
    GREY = 0
    GREEN = 1
    ORANGE = 2
    RED = 3


def worst(colours: Iterable[Colour | str]) -> Colour:
    """The most alarming colour of ``colours``; GREY when empty."""
    found = [Colour(c) for c in colours]
    if not found:
        return Colour.GREY
    return max(found, key=lambda c: _Rank[c.name])


def state_name(state: int) -> str:
    """STATE_PRIM -> "PRIM"; an unknown number -> "UNKNOWN"."""
    try:
        name = pb.ModuleState.Name(state)
    except ValueError:
        return UNKNOWN
    return UNKNOWN if state == pb.STATE_UNSPECIFIED else name.removeprefix("STATE_")


def readiness_name(readiness: int) -> str:
    """READINESS_NOT_READY -> "NotReady" (the design's spelling)."""
    return {
        pb.READINESS_NOT_READY: "NotReady",
        pb.READINESS_TRANSIENT: "Transient",
        pb.READINESS_READY: "Ready",
    }.get(readiness, "")


def state_colour(state: int, readiness: int) -> Colour:
    """The colour of a module state on one node (DESIGN §3 table)."""
    if state == pb.STATE_STOP:
        return Colour.RED
    if state == pb.STATE_WAIT:
        return Colour.ORANGE if readiness == pb.READINESS_TRANSIENT else Colour.RED
    if state == pb.STATE_ALONE:
        # Serving without a secondary: a failure of this node stops the service. Never
        # the green of a protected pair, however ready the resource is.
        return Colour.RED if readiness == pb.READINESS_NOT_READY else Colour.ORANGE
    if state in (pb.STATE_PRIM, pb.STATE_SECOND, pb.STATE_UP):
        if readiness == pb.READINESS_READY:
            return Colour.GREEN
        if readiness == pb.READINESS_TRANSIENT:
            return Colour.ORANGE
        return Colour.RED  # a serving state that says NotReady: never show it as fine
    return Colour.GREY


def is_primary(state: int) -> bool:
    return state in PRIMARY_STATES


def format_duration(seconds: float) -> str:
    """A short human duration: 45s, 3m 05s, 2h 10m."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {(s % 3600) // 60:02d}m"


def format_rate(bytes_per_s: float) -> str:
    """Always MiB/s (badge, graph summary, graph axis): two rates on the screen are never
    in two units."""
    return f"{bytes_per_s / (1 << 20):.1f} MiB/s"


def format_bytes(count: float) -> str:
    """1536 -> "1.5 KiB"."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # unreachable
