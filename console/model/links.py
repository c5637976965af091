"""What a server column says of each heartbeat link (pure): up or down, and how regular
its pulses arrive -- the gap between two pulses heard (what the peer timeout is compared
with: measured on the receiver alone, always true) and their lateness (received minus
sent: two machines' clocks, meaningful only where they are synchronized)."""

from __future__ import annotations

from dataclasses import dataclass

from console.model.states import Colour
from console.model.views import LinkView


@dataclass(frozen=True)
class LinkChip:
    text: str
    colour: Colour
    tooltip: str


def format_seconds(seconds: float) -> str:
    """0.0404 -> "40 ms", 1.25 -> "1.25 s" (heartbeat timings: tens of ms to seconds)."""
    if abs(seconds) < 1.0:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def measured(link: LinkView) -> bool:
    """Whether the agent has timing samples for the link (it reports zeros until then)."""
    return link.last_heard_age_s >= 0 and any(
        (link.gap_max_s, link.gap_p99_s, link.lateness_max_s, link.lateness_p99_s)
    )


def link_chip(link: LinkView) -> LinkChip:
    """The chip of one link: "lan up · gap p99 510 ms", green when up, red when down.
    The chip names the gap, not the lateness: the gap needs no synchronized clocks."""
    state = "up" if link.up else "down"
    text = f"{link.name} {state}"
    if measured(link):
        text += f" · gap p99 {format_seconds(link.gap_p99_s)}"
    return LinkChip(text, Colour.GREEN if link.up else Colour.RED, link_tooltip(link))


def link_tooltip(link: LinkView) -> str:
    lines = [f"{link.local_address} ↔ {link.peer_address}"]
    if link.last_heard_age_s < 0:
        lines.append("never heard on this link")
        return "\n".join(lines)
    lines.append(f"last heard {format_seconds(link.last_heard_age_s)} ago")
    if not measured(link):
        return "\n".join(lines)
    lines += [
        f"gap between pulses: p99 {format_seconds(link.gap_p99_s)}, "
        f"max {format_seconds(link.gap_max_s)} (what the peer timeout is compared with)",
        f"lateness: p99 {format_seconds(link.lateness_p99_s)}, "
        f"max {format_seconds(link.lateness_max_s)} (received minus sent: true only "
        "if both servers' clocks are synchronized)",
    ]
    return "\n".join(lines)
