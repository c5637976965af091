"""The one-line summary under the resync graph: how far a running resync is, or how a
finished one went (its percentage, duration and average rate). Rates are in MiB/s
everywhere in the console (the card's badge, this line, the graph's axis)."""

from __future__ import annotations

from dataclasses import dataclass

from console.model.history import ResyncPoint
from console.model.states import format_bytes, format_duration, format_rate


def format_elapsed(seconds: float) -> str:
    """Tenths below ten seconds (a 2.4 s resync is not "2s"), else format_duration."""
    return f"{seconds:.1f}s" if seconds < 10 else format_duration(seconds)


@dataclass(frozen=True)
class ResyncOutcome:
    """A finished resync as the console watched it."""

    percent: float | None
    bytes_done: int
    bytes_total: int
    seconds: float  # first point to the end
    rate: float  # bytes/s over that time; 0 when unknown
    joined_late: bool  # the console saw it from the middle: the start is not known

    @property
    def complete(self) -> bool:
        return self.bytes_total > 0 and self.bytes_done >= self.bytes_total


def outcome(points: list[ResyncPoint], joined_late: bool = False) -> ResyncOutcome | None:
    """How the resync of ``points`` (ending with its end point) went."""
    if not points:
        return None
    first, last = points[0], points[-1]
    seconds = max(0.0, last.t - first.t)
    moved = max(0, last.bytes_done - first.bytes_done)
    rate = moved / seconds if seconds > 0 else 0.0
    return ResyncOutcome(
        last.percent, last.bytes_done, last.bytes_total, seconds, rate, joined_late
    )


def summary(
    points: list[ResyncPoint],
    active: bool,
    node_id: str = "",
    source: str = "",
    joined_late: bool = False,
) -> str:
    """``node_id``: the node being resynchronized; ``source``: the one it copies from."""
    if not points:
        return "No resynchronization yet."
    who = f" {node_id}" if node_id else ""
    origin = f" from {source}" if node_id and source else ""
    last = points[-1]
    pct = f"{last.percent:.1f}%" if last.percent is not None else "size unknown"
    if active:
        eta = format_duration(last.eta_s) if last.eta_s > 0 else "estimating…"
        return (
            f"Resynchronizing{who}{origin}: {pct} — {format_bytes(last.bytes_done)} of "
            f"{format_bytes(last.bytes_total)} at {format_rate(last.rate)} — ETA {eta}"
        )
    o = outcome(points, joined_late)
    assert o is not None
    of = f" of{who}" if who else ""
    since = f" (watched from {points[0].percent:.0f}%)" if joined_late and points[0].percent else ""
    rate = f", {format_rate(o.rate)} on average" if o.rate > 0 else ""
    if o.complete:
        return (
            f"Last resynchronization{of}{origin}: complete, 100% — "
            f"{format_bytes(o.bytes_total)} in {format_elapsed(o.seconds)}{rate}{since}."
        )
    return (
        f"Last resynchronization{of}{origin}: stopped at {pct} — "
        f"{format_bytes(o.bytes_done)} of {format_bytes(o.bytes_total)} in "
        f"{format_elapsed(o.seconds)}{rate}{since}."
    )
