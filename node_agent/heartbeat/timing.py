"""How late heartbeats arrive, per link: recent samples and their max / 99th percentile.

Two measures (DESIGN §4: detection must not give false failovers under load):
- the gap between two pulses heard on a link (monotonic clock, receiver only): what
  the peer timeout is compared with, so a gap near the timeout is a near miss, whether
  the sender, the network or the receiver's loop was late;
- the lateness of each datagram: received minus ``sent_time`` (wall clocks of two
  machines: meaningful only where they are synchronized, e.g. in tests).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

WINDOW = 4096  # samples kept per measure: minutes of pulses, a few KB


@dataclass(frozen=True)
class Spread:
    count: int
    max_s: float
    p99_s: float


class Samples:
    def __init__(self, window: int = WINDOW) -> None:
        self._values: deque[float] = deque(maxlen=window)

    def add(self, value: float) -> None:
        self._values.append(value)

    def spread(self) -> Spread:
        if not self._values:
            return Spread(0, 0.0, 0.0)
        ordered = sorted(self._values)
        # Nearest rank: the smallest value at or above 99% of the samples.
        rank = max(1, math.ceil(0.99 * len(ordered)))
        return Spread(len(ordered), ordered[-1], ordered[rank - 1])


@dataclass
class LinkTiming:
    gaps: Samples
    lateness: Samples
    last_pulse: tuple[int, int] | None = None  # (boot_id, seq) of the newest pulse heard
    last_pulse_at: float | None = None  # when its first datagram arrived (monotonic)

    @classmethod
    def new(cls) -> LinkTiming:
        return cls(Samples(), Samples())

    def heard(self, key: tuple[int, int], mono_now: float, lateness_s: float) -> None:
        """One accepted datagram of pulse ``key``: a new pulse measures the gap since
        the previous one heard on this link (a gap across a peer restart counts too)."""
        self.lateness.add(lateness_s)
        if self.last_pulse is not None and key <= self.last_pulse:
            return
        if self.last_pulse_at is not None:
            self.gaps.add(max(0.0, mono_now - self.last_pulse_at))
        self.last_pulse, self.last_pulse_at = key, mono_now
