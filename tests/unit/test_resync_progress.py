"""ResyncProgress: rate and ETA from (time, bytes done) samples, time passed in."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node_agent.replication.resync.progress import ResyncProgress


@given(
    st.integers(1, 10**9),
    st.lists(st.tuples(st.floats(0.01, 5), st.integers(0, 10**7)), min_size=1, max_size=30),
)
def test_progress_rate_and_eta(total: int, steps: list[tuple[float, int]]) -> None:
    prog = ResyncProgress(total, now=100.0)
    assert prog.eta() is None and prog.fraction == 0.0
    now, done = 100.0, 0
    for dt, n in steps:
        now, done = now + dt, done + n
        prog.update(now, done)
        assert prog.rate >= 0 and 0.0 <= prog.fraction <= 1.0
        eta = prog.eta()
        assert eta is None or eta >= 0
        if done >= total:
            assert eta == 0.0


def test_progress_converges_to_a_steady_rate() -> None:
    prog = ResyncProgress(10**9, now=0.0, window_s=5.0)
    for t in range(1, 120):
        prog.update(float(t), t * 1_000_000)
    assert prog.rate == pytest.approx(1e6, rel=1e-6)
    assert prog.eta() == pytest.approx((10**9 - 119e6) / 1e6, rel=1e-6)
    prog.add_total(10**6)
    assert prog.bytes_total == 10**9 + 10**6


def test_bytes_counted_ahead_at_the_start_do_not_inflate_the_rate() -> None:
    # As a capped resync counts them: 2 MiB queued at once, then 10 MiB/s.
    mib = 1 << 20
    prog = ResyncProgress(100 * mib, now=0.0)
    t = 0.0
    while t < 2.0:
        t = round(t + 0.1, 1)
        prog.update(t, int((2 + 10 * t) * mib))
    assert prog.rate == pytest.approx(10 * mib, rel=0.12)  # 11 MiB/s: 2 MiB over 2 s
    while t < 8.0:
        t = round(t + 0.1, 1)
        prog.update(t, int((2 + 10 * t) * mib))
    assert prog.rate == pytest.approx(10 * mib, rel=0.01)  # the start left the window
    assert prog.eta() == pytest.approx((100 - 82) / 10, rel=0.02)


def test_a_finished_resync_is_complete_even_when_zones_needed_no_copy() -> None:
    # 4 zones planned; one was renamed away and one rewritten by the application during
    # the resync: the session copied only two, yet the secondary has everything.
    prog = ResyncProgress(4 << 20, now=0.0)
    prog.update(1.0, 2 << 20)
    assert prog.fraction == 0.5
    prog.finish()
    assert prog.bytes_done == prog.bytes_total and prog.fraction == 1.0
    assert prog.eta() == 0.0
    over = ResyncProgress(1 << 20, now=0.0)  # done can exceed a total that grew late
    over.update(1.0, 2 << 20)
    over.finish()
    assert over.bytes_done == 2 << 20


def test_before_the_plan_the_eta_is_unknown_not_zero() -> None:
    """A session that has not listed and planned yet does not know what it will send:
    the console shows "estimating", not "0 s" with the whole resync still to come."""
    p = ResyncProgress(None, 0.0)
    p.update(1.0, 0)
    assert p.eta() is None and p.bytes_total == 0
    assert ResyncProgress(0, 0.0).eta() == 0.0  # planned, nothing to send: done
