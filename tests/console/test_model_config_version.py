"""The configuration version each node runs, and a mismatch shown on the server column
(issue 12, point 6): from the nodes' own statuses, or from what a node heard its peer
announce when the console cannot reach that peer."""

from __future__ import annotations

import pytest

from console.model.cluster import ClusterModel
from console.model.states import Colour
from tests.console.builders import ADDR, module, node


def status(node_id: str, version: int, heard: int):
    st = node(node_id, module())
    st.config_version, st.peer_config_version, st.configured = version, heard, True
    return st


def model(v1: tuple[int, int] | None, v2: tuple[int, int] | None) -> ClusterModel:
    m = ClusterModel("c", ADDR)
    for node_id, v in (("node1", v1), ("node2", v2)):
        if v is None:
            m.apply_unreachable(node_id, "connection refused", 1.0)
        else:
            m.apply_snapshot(node_id, status(node_id, *v), 1.0)
    return m


@pytest.mark.parametrize(
    ("v1", "v2", "warn1", "warn2"),
    [
        ((3, 3), (3, 3), "", ""),
        ((3, 4), (4, 3), "runs configuration version 3, node2 runs version 4",
         "runs configuration version 4, node1 runs version 3"),
        # node2 unreachable: node1's heartbeat says what node2 runs.
        ((3, 4), None, "runs configuration version 3, its peer announces version 4", ""),
        ((3, 0), None, "", ""),  # nothing heard: nothing claimed
        ((0, 0), (2, 0), "", ""),  # node1 has no configuration (yet): no version to compare
    ],
)  # fmt: skip
def test_a_version_mismatch_is_named_on_each_node(v1, v2, warn1: str, warn2: str) -> None:
    m = model(v1, v2)
    assert m.node("node1").config_warning == warn1
    assert m.node("node2").config_warning == warn2
    if warn1:
        assert m.node("node1").colour is Colour.ORANGE  # links up, but not in agreement
    if v1 == (3, 3):
        assert m.node("node1").colour is Colour.GREEN and m.node("node1").config_version == 3


def test_the_server_column_shows_the_version_and_the_mismatch(qtbot) -> None:
    from console.ui.server_column import ServerColumn

    col = ServerColumn("node1", lambda _d, _n: None, lambda _d, _n: None, lambda _t: None)
    qtbot.addWidget(col)
    col.show()
    col.show_node(model((3, 4), (4, 3)).node("node1"))
    assert "config v3" in col.address.text()
    assert col.config_warning.isVisible()
    assert col.config_warning.text() == (
        "⚠ configuration mismatch: runs configuration version 3, node2 runs version 4"
    )
    col.show_node(model((4, 4), (4, 4)).node("node1"))
    assert not col.config_warning.isVisible() and "config v4" in col.address.text()
