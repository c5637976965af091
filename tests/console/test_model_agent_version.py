"""The agent build and protocol each node runs, and a mismatch shown on the server column
(issue 14, point 7: a rolling upgrade shows both builds until both servers run the new
one; a peer of an incompatible protocol is shown refused)."""

from __future__ import annotations

from console.model.cluster import ClusterModel
from console.model.states import Colour
from node_agent.engine.status import peer_build_fields
from node_agent.protocol import PROTOCOL, UNVERSIONED, PeerBuild, Protocol
from tests.console.builders import ADDR, module, node


def status(node_id: str, version: str, heard: PeerBuild | None, protocol: bool = True):
    """A node's status as its agent builds it; ``protocol`` False: an agent before 1.1,
    which says nothing of protocols."""
    st = node(node_id, module())
    st.version = version
    if protocol:
        for key, value in peer_build_fields(heard).items():
            setattr(st, key, value)
    return st


def model(st1, st2) -> ClusterModel:
    m = ClusterModel("c", ADDR)
    for node_id, st in (("node1", st1), ("node2", st2)):
        if st is None:
            m.apply_unreachable(node_id, "connection refused", 1.0)
        else:
            m.apply_snapshot(node_id, st, 1.0)
    return m


def test_the_same_build_shows_nothing() -> None:
    from node_agent import VERSION

    same = PeerBuild(PROTOCOL, VERSION)
    m = model(status("node1", VERSION, same), status("node2", VERSION, same))
    for n in ("node1", "node2"):
        assert m.node(n).version_warning == "" and m.node(n).colour is Colour.GREEN
        assert m.node(n).protocol == str(PROTOCOL)


def test_mid_upgrade_both_columns_say_so() -> None:
    # node1 still runs a build before 1.1 (it says nothing), node2 the new one.
    m = model(status("node1", "0.1.0", None, protocol=False),
              status("node2", "0.2.0", PeerBuild(UNVERSIONED, "")))  # fmt: skip
    warn2 = m.node("node2").version_warning
    assert "the peer runs an older build that does not say its version (protocol 1.0)" in warn2
    assert "compatible" in warn2 and m.node("node2").colour is Colour.ORANGE
    # node1's agent says nothing: the console compares the two statuses itself.
    assert m.node("node1").version_warning == "runs agent 0.1.0, node2 runs agent 0.2.0"
    assert m.node("node1").colour is Colour.ORANGE
    # node1 unreachable: node2's own word still stands.
    assert model(None, status("node2", "0.2.0", PeerBuild(UNVERSIONED, ""))).node(
        "node2").version_warning == warn2  # fmt: skip


def test_the_server_column_shows_the_build_and_the_mismatch(qtbot) -> None:
    from console.ui.server_column import ServerColumn

    col = ServerColumn("node2", lambda _d, _n: None, lambda _d, _n: None, lambda _t: None)
    qtbot.addWidget(col)
    col.show()
    heard = PeerBuild(Protocol(PROTOCOL.major, 0), "0.1.0")
    col.show_node(model(status("node1", "0.1.0", None), status("node2", "0.2.0", heard))
                  .node("node2"))  # fmt: skip
    assert f"agent 0.2.0 (protocol {PROTOCOL})" in col.address.text()
    assert col.version_warning.isVisible()
    assert col.version_warning.text().startswith("⚠ version mismatch: the peer runs 0.1.0")
    refused = PeerBuild(Protocol(PROTOCOL.major + 1, 0), "9.0")
    view = model(None, status("node2", "0.2.0", refused)).node("node2")
    assert view.colour is Colour.RED
    col.show_node(view)
    assert col.version_warning.text().startswith("⚠ protocol mismatch: the peer speaks protocol")
    from node_agent import VERSION

    same = PeerBuild(PROTOCOL, VERSION)  # the build these statuses are judged by
    col.show_node(model(status("node1", VERSION, same), status("node2", VERSION, same))
                  .node("node2"))  # fmt: skip
    assert not col.version_warning.isVisible()
