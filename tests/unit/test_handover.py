"""What an agent leaving its modules running tells the next one (engine/handover.py)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from node_agent.core.states import State
from node_agent.engine import handover
from node_agent.engine.handover import LeftRunning
from node_agent.heartbeat.liveness import MAX_LEAVING_S


def test_the_next_agent_takes_the_record_once(tmp_path: Path) -> None:
    handover.write(tmp_path, LeftRunning("boot-a", 100.0, {"web": "PRIM", "db": "ALONE"}))
    left = handover.take(tmp_path, 101.0, "boot-a")
    assert left is not None
    assert (left.state_of("web"), left.state_of("db")) == (State.PRIM, State.ALONE)
    assert left.state_of("other") is None
    assert handover.take(tmp_path, 101.0, "boot-a") is None  # consumed: a later start stops
    assert not list(tmp_path.iterdir())


@given(st.floats(-10, 3 * MAX_LEAVING_S), st.sampled_from(["boot-a", "boot-b", None]))
def test_only_a_fresh_record_of_this_boot_counts(age: float, boot: str | None) -> None:
    record = LeftRunning("boot-a", 1000.0, {"web": "PRIM"})
    now = 1000.0 + age
    fresh = 0 <= now - 1000.0 <= MAX_LEAVING_S  # the same float arithmetic as the record's
    assert record.usable(now, boot) == (boot == "boot-a" and fresh)


def test_only_a_served_module_is_taken_up() -> None:
    record = LeftRunning("b", 0.0, {"a": "SECOND", "b": "WAIT", "c": "STOP", "d": "nonsense"})
    assert [record.state_of(m) for m in "abcd"] == [None] * 4


def test_a_torn_or_foreign_record_is_dropped(tmp_path: Path) -> None:
    for text in ("{", '{"boot_id": "b"}', '{"boot_id": "b", "left_at": "x", "serving": {}}', "[]"):
        (tmp_path / handover.RECORD).write_text(text)
        assert handover.take(tmp_path, 0.0, "b") is None
        assert not (tmp_path / handover.RECORD).exists()
    assert handover.take(tmp_path, 0.0, "b") is None  # none at all
