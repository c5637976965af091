"""What a module's primary replicated over the life of its data plane, across streams
(each break and reconnect builds a new StreamSender; the totals go on): operations and
bytes sent, and the acknowledgement latency of the operations a writer waited on, as a
histogram. Thread-safe (FUSE threads, the sender's thread); no clock of its own: the
sender passes each latency in. The data plane reports a snapshot in its state
(protos/dataplane.proto), the agent's metrics endpoint shows it (docs/metrics.md).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable
from dataclasses import dataclass

# Upper bounds (seconds) of the latency buckets: from a loopback 4 KiB write (~0.3 ms)
# to the ack timeout's order (seconds). Prometheus buckets are "less or equal".
LATENCY_BOUNDS_S: tuple[float, ...] = (
    0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip


@dataclass(frozen=True)
class TotalsSnapshot:
    ops: int = 0
    bytes: int = 0
    bounds_s: tuple[float, ...] = LATENCY_BOUNDS_S
    # Per bucket, not cumulative: counts[i] latencies <= bounds_s[i] (and > the bound
    # before); one more at the end for those above the last bound.
    counts: tuple[int, ...] = (0,) * (len(LATENCY_BOUNDS_S) + 1)
    latency_sum_s: float = 0.0

    @property
    def latency_count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, count <= it) per bucket, the last bound being +inf."""
        out, total = [], 0
        for bound, n in zip((*self.bounds_s, float("inf")), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out


class StreamTotals:
    def __init__(self, bounds_s: tuple[float, ...] = LATENCY_BOUNDS_S) -> None:
        if list(bounds_s) != sorted(set(bounds_s)):
            raise ValueError("latency bounds must be strictly increasing")
        self._bounds = bounds_s
        self._lock = threading.Lock()
        self._ops = self._bytes = 0
        self._counts = [0] * (len(bounds_s) + 1)
        self._sum = 0.0

    def sent(self, ops: int, nbytes: int) -> None:
        with self._lock:
            self._ops += ops
            self._bytes += nbytes

    def acknowledged(self, latencies_s: Iterable[float]) -> None:
        """Latencies (enqueue to the releasing ACK) of ops whose writers waited."""
        with self._lock:
            for lat in latencies_s:
                lat = max(0.0, lat)
                self._counts[bisect.bisect_left(self._bounds, lat)] += 1
                self._sum += lat

    def snapshot(self) -> TotalsSnapshot:
        with self._lock:
            return TotalsSnapshot(self._ops, self._bytes, self._bounds, tuple(self._counts),
                                  self._sum)  # fmt: skip
