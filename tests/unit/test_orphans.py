"""Which zombie children the agent reaps (node_agent.host.orphans)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from node_agent.host.orphans import OrphanPlan


def test_reaped_only_after_the_grace():
    plan = OrphanPlan(grace_s=2.0)
    assert plan.due({10: 500}, 0.0) == []
    assert plan.due({10: 500}, 1.9) == []
    assert plan.due({10: 500, 11: 600}, 2.0) == [10]
    assert plan.due({11: 600}, 4.1) == [11]


def test_one_reaped_by_its_owner_is_forgotten():
    plan = OrphanPlan(grace_s=2.0)
    plan.due({10: 500}, 0.0)
    assert plan.due({}, 1.0) == []
    assert plan.due({10: 500}, 2.5) == []  # seen again: a fresh grace


def test_a_reused_pid_is_a_new_process():
    plan = OrphanPlan(grace_s=2.0)
    plan.due({10: 500}, 0.0)
    assert plan.due({10: 900}, 2.5) == []  # same pid, other start time
    assert plan.due({10: 900}, 4.5) == [10]


@given(st.lists(st.dictionaries(st.integers(2, 30), st.integers(0, 3), max_size=8), max_size=30))
def test_never_reaped_before_seen_zombie_for_the_grace(scans):
    plan = OrphanPlan(grace_s=2.0)
    since: dict[tuple[int, int], float] = {}
    for i, zombies in enumerate(scans):
        now = i * 0.5
        since = {k: since.get(k, now) for k in zombies.items()}
        for pid in plan.due(zombies, now):
            assert now - since[(pid, zombies[pid])] >= 2.0
