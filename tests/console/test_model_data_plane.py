"""A module's data plane on each node (pure): the badge, the colour it forces on the
node's state, the line that names it, and what the cluster model makes of a status."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from console.model.data_plane import (
    data_plane_badges,
    data_plane_colour,
    data_plane_line,
    data_plane_view,
)
from console.model.states import Colour, state_colour
from console.model.views import DataPlaneView
from protos import mirrorpair_pb2 as pb
from tests.console.builders import READY, STATES, module, pair

UP = DataPlaneView(4242, "0.1.0", "primary", "replicate", 2, 1.0e9)
DOWN = DataPlaneView(0, "", "none", "", 0, 0.0)


def with_plane(m: pb.ModuleStatus, **info: object) -> pb.ModuleStatus:
    m.data_plane.CopyFrom(pb.DataPlaneInfo(**info))  # type: ignore[arg-type]
    return m


def test_no_data_plane_reported_is_none_and_says_nothing() -> None:
    m = module()
    assert data_plane_view(m) is None
    assert data_plane_badges(None, "node1", "web", "0.1.0") == ()
    assert data_plane_colour(None) is None and data_plane_line(None) == ""


def test_a_reported_data_plane_is_read_field_by_field() -> None:
    m = with_plane(module(), pid=7, version="0.0.9", role="secondary", mode="", mounts=1,
                   started_at=5.0)  # fmt: skip
    assert data_plane_view(m) == DataPlaneView(7, "0.0.9", "secondary", "", 1, 5.0)


def test_pid_zero_is_down_even_with_every_other_field_empty() -> None:
    dp = data_plane_view(with_plane(module(), pid=0))
    assert dp is not None and dp.down


def test_down_is_a_red_badge_naming_node_and_module() -> None:
    (badge,) = data_plane_badges(DOWN, "node2", "web", "0.1.0")
    assert badge.text == "data plane down" and badge.colour is Colour.RED
    assert "web" in badge.tooltip and "node2" in badge.tooltip
    assert data_plane_colour(DOWN) is Colour.RED
    assert data_plane_line(DOWN).startswith("data plane: DOWN")


def test_up_on_the_agents_build_adds_no_badge_and_its_line_names_pid_build_mounts() -> None:
    assert data_plane_badges(UP, "node1", "web", "0.1.0") == ()
    assert data_plane_colour(UP) is None
    line = "data plane: pid 4242 · build 0.1.0 · primary, replicate · 2 mounts"
    assert data_plane_line(UP) == line
    one = DataPlaneView(9, "", "secondary", "", 1, 0.0)
    assert data_plane_line(one) == "data plane: pid 9 · secondary · 1 mount"


def test_a_data_plane_of_another_build_is_named_in_grey() -> None:
    (badge,) = data_plane_badges(UP, "node1", "web", "0.2.0")
    assert badge.text == "data plane 0.1.0" and badge.colour is Colour.GREY
    assert "0.2.0" in badge.tooltip
    # An unknown build on either side says nothing rather than guess.
    assert data_plane_badges(UP, "node1", "web", "") == ()
    assert data_plane_badges(DataPlaneView(1, "", "", "", 0, 0.0), "n", "w", "0.2.0") == ()


@given(
    state=st.sampled_from(sorted(STATES)),
    readiness=st.sampled_from(sorted(READY)),
    down=st.booleans(),
)
def test_a_node_whose_data_plane_is_down_is_red_whatever_its_state(
    state: str, readiness: str, down: bool
) -> None:
    prim = with_plane(module(state=state, readiness=readiness), pid=0 if down else 31)
    model = pair(prim, module(state="SECOND"))
    view = model.modules()[0].nodes["node1"]
    expected = state_colour(STATES[state], READY[readiness])
    if down:
        assert view.colour is Colour.RED
        assert "data plane down" in [b.text for b in view.badges]
        assert model.summary_colour() is Colour.RED
    else:
        assert view.colour is expected
        assert "data plane down" not in [b.text for b in view.badges]
    assert view.data_plane is not None and view.data_plane.down is down


def test_the_node_with_the_data_plane_down_is_the_one_flagged() -> None:
    model = pair(with_plane(module(), pid=12, version="0.1.0", mounts=1),
                 with_plane(module(state="SECOND"), pid=0))  # fmt: skip
    web = model.modules()[0]
    assert [b.text for b in web.nodes["node1"].badges] == ["up to date"]
    assert web.nodes["node1"].colour is Colour.GREEN
    assert web.nodes["node2"].badges[0].text == "data plane down"
    assert web.nodes["node2"].colour is Colour.RED and web.colour is Colour.RED
