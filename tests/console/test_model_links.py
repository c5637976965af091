"""The heartbeat link chips of a server column (pure): state, the gap between pulses,
and a tooltip with both timings -- no number before the agent measured one."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from console.model.cluster import ClusterModel
from console.model.links import format_seconds, link_chip, measured
from console.model.states import Colour
from console.model.views import LinkView
from tests.console.builders import ADDR, module, node


def link(up: bool = True, heard: float = 0.2, **timing: float) -> LinkView:
    return LinkView("lan", up, "10.0.0.1", "10.0.0.2", heard, **timing)


def test_format_seconds() -> None:
    assert format_seconds(0.0404) == "40 ms"
    assert format_seconds(0.9994) == "999 ms"
    assert format_seconds(1.0) == "1.00 s"
    assert format_seconds(2.345) == "2.35 s"


def test_a_measured_link_shows_its_gap_p99_and_both_timings_in_its_tooltip() -> None:
    chip = link_chip(link(gap_p99_s=0.51, gap_max_s=0.62, lateness_p99_s=0.04,
                          lateness_max_s=0.08))  # fmt: skip
    assert chip.text == "lan up · gap p99 510 ms" and chip.colour is Colour.GREEN
    assert "gap between pulses: p99 510 ms, max 620 ms" in chip.tooltip
    assert "lateness: p99 40 ms, max 80 ms" in chip.tooltip
    assert "synchronized" in chip.tooltip  # lateness compares two clocks: said so
    assert "10.0.0.1 ↔ 10.0.0.2" in chip.tooltip and "last heard 200 ms ago" in chip.tooltip


def test_nothing_measured_yet_shows_no_numbers() -> None:
    chip = link_chip(link())
    assert chip.text == "lan up" and "gap" not in chip.tooltip
    never = link_chip(link(up=False, heard=-1.0, gap_p99_s=0.5))  # never heard: no samples
    assert never.text == "lan down" and never.colour is Colour.RED
    assert "never heard" in never.tooltip and "gap" not in never.tooltip


@given(
    up=st.booleans(),
    heard=st.floats(-1.0, 100.0),
    gap=st.floats(0.0, 30.0),
    late=st.floats(-5.0, 5.0),
)
def test_the_chip_names_the_state_and_a_number_only_when_measured(
    up: bool, heard: float, gap: float, late: float
) -> None:
    lv = link(up, heard, gap_p99_s=gap, gap_max_s=gap, lateness_p99_s=late, lateness_max_s=late)
    chip = link_chip(lv)
    assert chip.text.startswith(f"lan {'up' if up else 'down'}")
    assert chip.colour is (Colour.GREEN if up else Colour.RED)
    assert ("gap p99" in chip.text) is measured(lv)
    assert measured(lv) is (heard >= 0 and (gap != 0 or late != 0))


def test_the_model_carries_the_agents_link_timings() -> None:
    st_ = node("node1", module())
    lk = st_.links[0]
    lk.gap_max_s, lk.gap_p99_s, lk.lateness_max_s, lk.lateness_p99_s = 0.7, 0.6, 0.09, 0.05
    m = ClusterModel("c", ADDR)
    m.apply_snapshot("node1", st_, 1.0)
    first = m.node("node1").links[0]
    assert (first.gap_max_s, first.gap_p99_s) == (0.7, 0.6)
    assert (first.lateness_max_s, first.lateness_p99_s) == (0.09, 0.05)
