"""The console model: colours, labels and badges of DESIGN §3."""

from __future__ import annotations

import pytest

from console.model.cluster import ClusterModel
from console.model.states import Colour, format_duration, state_colour, worst
from protos import mirrorpair_pb2 as pb
from tests.console.builders import READY, STATES, module, node

ADDR = {"node1": "127.0.0.1:1", "node2": "127.0.0.2:2"}


@pytest.mark.parametrize(
    ("state", "readiness", "colour"),
    [
        ("STOP", "NotReady", Colour.RED),
        ("WAIT", "NotReady", Colour.RED),
        ("WAIT", "Transient", Colour.ORANGE),
        ("ALONE", "Transient", Colour.ORANGE),
        ("ALONE", "Ready", Colour.ORANGE),  # serving, but without a copy: not protected
        ("ALONE", "NotReady", Colour.RED),
        ("PRIM", "Transient", Colour.ORANGE),
        ("PRIM", "Ready", Colour.GREEN),
        ("SECOND", "Transient", Colour.ORANGE),
        ("SECOND", "Ready", Colour.GREEN),
        ("UP", "Ready", Colour.GREEN),
        ("PRIM", "NotReady", Colour.RED),
    ],
)
def test_state_colours(state: str, readiness: str, colour: Colour) -> None:
    assert state_colour(STATES[state], READY[readiness]) is colour


def test_unknown_state_is_grey() -> None:
    assert state_colour(pb.STATE_UNSPECIFIED, pb.READINESS_READY) is Colour.GREY
    assert state_colour(99, pb.READINESS_READY) is Colour.GREY


def test_worst_ranks_red_over_orange_over_green_over_grey() -> None:
    assert worst([Colour.GREEN, Colour.GREY]) is Colour.GREEN
    assert worst(["green", "orange"]) is Colour.ORANGE
    assert worst([Colour.ORANGE, Colour.RED, Colour.GREEN]) is Colour.RED
    assert worst([]) is Colour.GREY


def test_pair_views_and_vip() -> None:
    m = ClusterModel("c", ADDR)
    m.apply_snapshot("node1", node("node1", module(vip="10.0.0.9/24", vip_held=True)), 1.0)
    m.apply_snapshot("node2", node("node2", module(state="SECOND", vip="10.0.0.9/24")), 1.0)
    (web,) = m.modules()
    assert web.primary == "node1" and web.home == "node1" and web.vip_holder == "node1"
    assert web.nodes["node1"].text == "PRIM · Ready"
    assert web.nodes["node2"].colour is Colour.GREEN
    assert web.vip_text() == "VIP 10.0.0.9/24 · on node1"
    assert web.colour is Colour.GREEN and m.summary_colour() is Colour.GREEN


def test_connecting_then_error_and_back() -> None:
    m = ClusterModel("c", ADDR)
    m.apply_snapshot("node2", node("node2", module(state="ALONE")), 1.0)
    web = m.module("web")
    assert web is not None and web.nodes["node1"].label == "CONNECTING"
    assert web.nodes["node1"].colour is Colour.GREY
    m.apply_unreachable("node1", "connection refused", 2.0)
    web = m.module("web")
    assert web is not None
    assert web.nodes["node1"].label == "ERROR" and web.nodes["node1"].colour is Colour.RED
    assert web.nodes["node1"].reason == "connection refused"
    assert web.nodes["node2"].colour is Colour.ORANGE  # ALONE Ready: not protected
    assert m.node("node1").colour is Colour.RED and not m.node("node1").reachable
    assert m.summary_colour() is Colour.RED
    m.apply_snapshot("node1", node("node1", module(state="SECOND", readiness="Transient")), 3.0)
    web = m.module("web")
    assert web is not None and web.nodes["node1"].colour is Colour.ORANGE


def test_not_configured_is_grey() -> None:
    m = ClusterModel("c", ADDR)
    m.apply_snapshot("node1", node("node1", module(), module("db", state="ALONE")), 1.0)
    m.apply_snapshot("node2", node("node2", module(state="SECOND")), 1.0)
    db = m.module("db")
    assert db is not None
    assert db.nodes["node2"].label == "NOT CONFIGURED" and db.nodes["node2"].colour is Colour.GREY
    assert not db.nodes["node2"].configured


def test_unreachable_primary_seen_by_peer_keeps_the_card_home() -> None:
    m = ClusterModel("c", ADDR)
    m.apply_snapshot(
        "node2",
        node("node2", module(state="SECOND", peer=("PRIM", "Ready"), preferred="node2")),
        1.0,
    )
    m.apply_unreachable("node1", "timeout", 1.0)
    web = m.module("web")
    assert web is not None and web.primary == "node1" and web.home == "node1"


def test_two_primaries() -> None:
    m = ClusterModel("c", ADDR)
    m.apply_snapshot("node1", node("node1", module(state="ALONE")), 1.0)
    m.apply_snapshot("node2", node("node2", module(state="ALONE")), 1.0)
    web = m.module("web")
    assert web is not None and web.primary is None and web.two_primaries


def test_badges() -> None:
    m = ClusterModel("c", ADDR)
    m.apply_snapshot(
        "node1",
        node("node1", module(state="ALONE", degraded=True, checkers=(("http", False),))),
        1.0,
    )
    outdated = module(state="WAIT", readiness="NotReady", uptodate=False)
    m.apply_snapshot("node2", node("node2", outdated), 1.0)
    web = m.module("web")
    assert web is not None
    texts1 = [b.text for b in web.nodes["node1"].badges]
    assert texts1 == ["not protected", "degraded", "up to date", "http failing"]
    assert web.nodes["node1"].badges[0].colour is Colour.ORANGE
    assert web.nodes["node1"].badges[1].colour is Colour.RED
    m.apply_snapshot("node2", node("node2", module(state="WAIT", split_brain=True)), 2.0)
    web = m.module("web")
    assert web is not None and web.nodes["node2"].badges[0].text == "split brain"
    assert web.nodes["node2"].badges[0].colour is Colour.RED


def test_a_resync_is_shown_as_a_resync_not_as_degraded() -> None:
    # The secondary came back: the primary (PRIM again) resyncs it. An agent may still
    # report the primary degraded meanwhile; the operator sees the resync, and why.
    m = ClusterModel("c", ADDR)
    primary = module(state="PRIM", readiness="Transient", degraded=True)
    m.apply_snapshot("node1", node("node1", primary), 1.0)
    rejoining = module(state="SECOND", readiness="Transient", uptodate=False)
    m.apply_snapshot("node2", node("node2", rejoining), 1.0)
    web = m.module("web")
    assert web is not None
    # No progress yet (the copies are being compared): the resync is already shown.
    assert [b.text for b in web.nodes["node1"].badges] == ["resyncing node2", "up to date"]
    assert [b.text for b in web.nodes["node2"].badges] == ["resync starting", "not up to date"]
    primary.resync.CopyFrom(
        pb.ResyncProgress(active=True, bytes_done=25 << 20, bytes_total=100 << 20,
                          rate_bytes_per_s=10 << 20, eta_s=185.0)
    )  # fmt: skip
    m.apply_snapshot("node1", node("node1", primary), 2.0)
    web = m.module("web")
    assert web is not None
    n1, n2 = web.nodes["node1"], web.nodes["node2"]
    assert [b.text for b in n1.badges] == ["resyncing node2 25%", "up to date"]
    assert "replication to node2 had failed" in n1.badges[0].tooltip
    assert n1.badges[0].colour is Colour.ORANGE and n1.colour is Colour.ORANGE
    assert [b.text for b in n2.badges] == ["resync 25% · ETA 3m 05s · 10.0 MiB/s", "not up to date"]
    # Replication fails again: the peer waits, not up to date; degraded shows again.
    m.apply_snapshot("node2", node("node2", module(state="WAIT", uptodate=False)), 3.0)
    web = m.module("web")
    assert web is not None and "degraded" in [b.text for b in web.nodes["node1"].badges]


def test_links_down_make_the_node_orange() -> None:
    m = ClusterModel("c", ADDR)
    m.apply_snapshot("node1", node("node1", module(), links_up=(True, False)), 1.0)
    view = m.node("node1")
    assert [lk.up for lk in view.links] == [True, False] and view.colour is Colour.ORANGE


def test_format_duration() -> None:
    assert format_duration(5) == "5s"
    assert format_duration(185) == "3m 05s"
    assert format_duration(7800) == "2h 10m"
