"""Resync progress for the API and the console: bytes done of bytes total, a rate and an
ETA. Pure: time is passed in."""

from __future__ import annotations

from collections import deque

MIN_RATE_SAMPLE_S = 0.2
RATE_WINDOW_S = 5.0


class ResyncProgress:
    """The rate over the last ``window_s`` seconds (the bytes done then and now; since the
    start while younger) and the ETA from it; time is passed in.

    Not an exponential average seeded by the first sample: bytes are counted when a zone
    is queued, ahead of the bandwidth cap's pause, so the first fifth of a second reads
    fast, and with a 10 s time constant a short resync showed ~1.4x its real rate (and
    an ETA as much too short) all along."""

    def __init__(
        self, bytes_total: int | None, now: float, window_s: float = RATE_WINDOW_S
    ) -> None:
        # None: not known yet (the session has not planned): no ETA -- "0 s left" would
        # be shown while the whole resync is still to come.
        self.known = bytes_total is not None
        self.bytes_total = bytes_total or 0
        self.bytes_done = 0
        self.rate = 0.0  # bytes/s
        self._window = window_s
        self._samples: deque[tuple[float, int]] = deque([(now, 0)])

    def add_total(self, nbytes: int) -> None:
        """More to send (zones dirtied during the resync, hash differences found)."""
        self.bytes_total += nbytes

    def update(self, now: float, bytes_done: int) -> None:
        self.bytes_done = max(self.bytes_done, bytes_done)
        if now - self._samples[-1][0] < MIN_RATE_SAMPLE_S:
            # Too short to measure a rate (the first zone goes out before the pacer
            # sleeps): keep accumulating until the interval means something.
            return
        self._samples.append((now, self.bytes_done))
        # Keep the newest sample at least a window old as the rate's starting point.
        while len(self._samples) > 2 and now - self._samples[1][0] >= self._window:
            self._samples.popleft()
        since, then = self._samples[0]
        self.rate = max(0, self.bytes_done - then) / (now - since)

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
        """Seconds left, None while the rate or the total is unknown."""
        if not self.known:
            return None
        left = max(0, self.bytes_total - self.bytes_done)
        if left == 0:
            return 0.0
        return left / self.rate if self.rate > 0 else None
