"""The replication totals a data plane reports (node_agent/replication/stream/totals.py)."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node_agent.replication.stream.totals import LATENCY_BOUNDS_S, StreamTotals


def test_bounds_must_increase() -> None:
    for bad in ((0.1, 0.01), (0.1, 0.1)):
        with pytest.raises(ValueError):
            StreamTotals(bad)


def test_a_latency_on_a_bound_is_in_that_bucket() -> None:
    t = StreamTotals((0.001, 0.01))
    t.acknowledged([0.001, 0.0011, 0.01, 0.2, -1.0])  # a clock step reads as 0
    s = t.snapshot()
    assert s.counts == (2, 2, 1) and s.latency_count == 5
    assert s.cumulative() == [(0.001, 2), (0.01, 4), (float("inf"), 5)]
    assert s.latency_sum_s == pytest.approx(0.001 + 0.0011 + 0.01 + 0.2)


@given(st.lists(st.floats(0, 10, allow_nan=False), max_size=50))
def test_cumulative_counts_match_the_definition(lats: list[float]) -> None:
    t = StreamTotals()
    t.acknowledged(lats)
    for bound, n in t.snapshot().cumulative():
        assert n == sum(1 for x in lats if x <= bound)
    assert len(t.snapshot().counts) == len(LATENCY_BOUNDS_S) + 1


def test_sent_adds_up_across_threads() -> None:
    t = StreamTotals()

    def work() -> None:
        for _ in range(1000):
            t.sent(2, 10)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    s = t.snapshot()
    assert (s.ops, s.bytes) == (8000, 40000)
