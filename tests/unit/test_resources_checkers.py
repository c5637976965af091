"""CheckerTracker: pure bookkeeping of checker results (time passed in)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node_agent.config.model import CheckerAction, CheckerConfig, CheckerKind
from node_agent.resources.checkers import (
    CheckerTracker,
    CheckerVerdict,
    CheckResult,
    counts_as_failure,
)


def cfg(failures: int = 3, interval_s: float = 5.0, action=CheckerAction.RESTART):
    return CheckerConfig(
        name="c",
        kind=CheckerKind.TCP,
        target="h:1",
        interval_s=interval_s,
        failures=failures,
        action=action,
    )


def test_threshold_reached_once_per_failure_run() -> None:
    t = CheckerTracker(cfg(failures=3, action=CheckerAction.WAIT))
    verdicts = [
        t.record(ok, float(i), f"r{i}")
        for i, ok in enumerate([False, False, False, False, True, False])
    ]
    assert [v.trip for v in verdicts] == [False, False, True, False, False, False]
    assert [v.failing for v in verdicts] == [False, False, True, True, False, False]
    assert [v.cleared for v in verdicts] == [False, False, False, False, True, False]
    assert [v.consecutive_failures for v in verdicts] == [1, 2, 3, 4, 0, 1]
    assert verdicts[2] == CheckerVerdict(
        ok=False,
        consecutive_failures=3,
        failing=True,
        trip=True,
        cleared=False,
        action=CheckerAction.WAIT,
        detail="r2",
    )
    assert t.last_detail == "r5" and t.last_ok is False and t.last_time == 5.0


def test_single_failure_threshold() -> None:
    t = CheckerTracker(cfg(failures=1))
    assert t.record(False, 0).trip
    assert not t.record(False, 1).trip  # still failing, already reported
    assert t.record(True, 2).cleared
    assert t.record(False, 3).trip


def test_reset_rearms_after_an_action() -> None:
    t = CheckerTracker(cfg(failures=2))
    t.record(False, 0)
    assert t.record(False, 1).trip
    t.reset()  # e.g. the caller restarted the module
    assert not t.failing
    assert not t.record(False, 2).trip
    assert t.record(False, 3).trip


def test_scheduling() -> None:
    t = CheckerTracker(cfg(interval_s=5))
    assert t.due(0.0) and t.due(-1e9)  # never checked: due at once
    assert t.last_ok is None
    t.record(True, 100.0)
    assert not t.due(104.999)
    assert t.due(105.0)
    assert t.next_due == 105.0


def test_zero_failures_config_is_treated_as_one() -> None:
    t = CheckerTracker(cfg(failures=0))
    assert t.threshold == 1
    assert t.record(False, 0).trip


@given(
    failures=st.integers(min_value=1, max_value=6),
    results=st.lists(st.booleans(), max_size=60),
    action=st.sampled_from(list(CheckerAction)),
)
def test_matches_a_reference_model(failures: int, results: list[bool], action) -> None:
    t = CheckerTracker(cfg(failures=failures, action=action))
    run = 0
    trips = 0
    for i, ok in enumerate(results):
        previous_run = run
        run = 0 if ok else run + 1
        v = t.record(ok, float(i), str(i))
        assert v.ok is ok
        assert v.consecutive_failures == run == t.consecutive_failures
        assert v.failing is (run >= failures) is t.failing
        assert v.trip is (run == failures)
        assert v.cleared is (ok and previous_run >= failures)
        assert v.action is action
        assert v.detail == str(i)
        trips += v.trip
    # One trip for every run of consecutive failures at least `failures` long.
    runs = "".join("x" if not ok else "." for ok in results).split(".")
    assert trips == sum(1 for r in runs if len(r) >= failures)


@given(
    interval=st.floats(min_value=0.0, max_value=1e4, allow_nan=False),
    times=st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1),
)
def test_due_exactly_interval_after_last_record(interval: float, times: list[float]) -> None:
    t = CheckerTracker(cfg(interval_s=interval))
    now = 0.0
    for step in times:
        now += step
        t.record(True, now)
        assert t.next_due == now + interval
        assert t.due(now + interval)
        if interval > 0 and not math.isclose(now, now + interval):
            assert not t.due(now)


# -- counts_as_failure: an application still starting ---------------------------------
NOT_YET = CheckResult(False, "tcp 127.0.0.1:80: Connection refused", not_up_yet=True)
DEAD = CheckResult(False, "domain rec is not running: crashed")


@pytest.mark.parametrize(
    ("result", "primary", "started_at", "now", "counts"),
    [
        (CheckResult(True, "ok"), True, 0.0, 1.0, False),  # a pass never counts
        (NOT_YET, True, 100.0, 159.9, False),  # within start_timeout_s (60) of the start
        (NOT_YET, True, 100.0, 160.0, True),  # the start's time is up
        (NOT_YET, True, None, 5.0, True),  # no start waited for: it answered once already
        (NOT_YET, False, 100.0, 101.0, True),  # a probe of the host, not of the application
        (DEAD, True, 100.0, 101.0, True),  # it died while starting: at once
    ],
)
def test_a_probe_of_an_application_still_starting_does_not_count_until_its_time_is_up(
    result: CheckResult, primary: bool, started_at: float | None, now: float, counts: bool
) -> None:
    assert counts_as_failure(result, primary, started_at, 60.0, now) is counts
