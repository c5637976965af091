"""Resync progress for the API and the console: bytes done of bytes total, a rate and an
ETA. Pure: time is passed in."""

from __future__ import annotations

import math

MIN_RATE_SAMPLE_S = 0.2


class ResyncProgress:
    """Rate (EWMA over time) and ETA from (time, bytes done) samples; time is passed in."""

    def __init__(self, bytes_total: int, now: float, time_constant: float = 10.0) -> None:
        self.bytes_total = bytes_total
        self.bytes_done = 0
        self.rate = 0.0  # bytes/s
        self._tau = time_constant
        self._last = now
        self._rate_bytes = 0  # bytes done at the last rate sample
        self._samples = 0

    def add_total(self, nbytes: int) -> None:
        """More to send (zones dirtied during the resync, hash differences found)."""
        self.bytes_total += nbytes

    def update(self, now: float, bytes_done: int) -> None:
        self.bytes_done = max(self.bytes_done, bytes_done)
        dt = now - self._last
        if dt < MIN_RATE_SAMPLE_S:
            # Too short to measure a rate (the first zone goes out before the pacer
            # sleeps): keep accumulating until the interval means something.
            return
        instant = max(0, self.bytes_done - self._rate_bytes) / dt
        # The first sample sets the rate outright; later ones decay by elapsed time.
        alpha = 1.0 if self._samples == 0 else 1.0 - math.exp(-dt / self._tau)
        self.rate += alpha * (instant - self.rate)
        self._rate_bytes = self.bytes_done
        self._last = now
        self._samples += 1

    def finish(self) -> None:
        """The resync completed: every zone counted in the total is on the secondary, by
        the resync or by the application's own replicated writes. (Zones that needed no
        copy in the end -- a file renamed or deleted meanwhile, a zone the application
        rewrote first -- were never counted as done, which left a finished resync
        published below 100 %.)"""
        self.bytes_done = max(self.bytes_done, self.bytes_total)

    @property
    def fraction(self) -> float:
        if self.bytes_total <= 0:
            return 1.0
        return min(1.0, self.bytes_done / self.bytes_total)

    def eta(self) -> float | None:
        """Seconds left, None while the rate is unknown."""
        left = max(0, self.bytes_total - self.bytes_done)
        if left == 0:
            return 0.0
        return left / self.rate if self.rate > 0 else None
