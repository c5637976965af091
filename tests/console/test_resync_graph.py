"""The resync graph fed through the real model path: ModuleStatus snapshots with resync
progress, as the agents publish it (the primary publishes the resync it sends) ->
ClusterSession -> ResyncHistory -> ModuleDetail's pyqtgraph curves and summary.
(test_console_resync_live.py does the same with two real agents resyncing.)"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from console.client.events import NodeSnapshot
from console.settings.clusters import make_entry
from console.settings.secrets import SecretStore
from console.ui.detail_panel import ModuleDetail
from console.ui.resync_graph import ResyncGraph
from console.ui.session import ClusterSession
from protos import mirrorpair_pb2 as pb
from tests.console.builders import module, node

MIB = 1 << 20


def detail_on(qtbot: Any, tmp_path: Path) -> tuple[ClusterSession, ModuleDetail]:
    entry = make_entry(
        "c",
        "127.0.0.1:1",
        "127.0.0.2:1",
        str(tmp_path / "ca.pem"),
        str(tmp_path / "a.pem"),
        str(tmp_path / "a.key"),
    )
    session = ClusterSession(entry, SecretStore())  # not started: no network at all
    session.resync.min_interval_s = 0.0
    detail = ModuleDetail()
    qtbot.addWidget(detail)
    detail.set_session(session)
    detail.set_module("web")
    detail.tabs.setCurrentWidget(detail.graph)
    detail.show()
    return session, detail


def primary(done_mib: int | None, eta: float = 0.0, active: bool = True) -> pb.NodeStatus:
    m = module(state="PRIM", readiness="Transient" if active else "Ready")
    if done_mib is not None:
        m.resync.CopyFrom(
            pb.ResyncProgress(active=active, bytes_done=done_mib * MIB, bytes_total=100 * MIB,
                              rate_bytes_per_s=30.0 * MIB, eta_s=eta)
        )  # fmt: skip
    return node("node1", m)


def test_graph_follows_a_resync_to_its_end(qtbot: Any, aio: Any, tmp_path: Path) -> None:
    session, detail = detail_on(qtbot, tmp_path)
    now = time.time()
    rejoining = node("node2", module(state="SECOND", readiness="Transient", uptodate=False))
    session.handle_event(NodeSnapshot("c", "node2", rejoining, now))
    session.handle_event(NodeSnapshot("c", "node1", primary(None), now))
    for i, done in enumerate((10, 40, 70)):
        session.handle_event(NodeSnapshot("c", "node1", primary(done, 30.0 - i), now + 1 + i))

    graph = detail.graph
    xs, ys = graph.curve_data()
    assert [float(y) for y in ys] == [10.0, 40.0, 70.0]
    assert [round(float(x), 3) for x in xs] == [0.0, 1.0, 2.0]
    assert [float(y) for y in graph.rate_data()[1]] == [30.0, 30.0, 30.0]  # MiB/s
    text = graph.summary.text()
    assert text == (
        "Resynchronizing node2 from node1: 70.0% — 70.0 MiB of 100.0 MiB at 30.0 MiB/s — ETA 28s"
    )
    card_badges = [b.text for b in session.model.module("web").nodes["node2"].badges]
    assert card_badges[0] == "resync 70% · ETA 28s · 30.0 MiB/s"

    # Over: the agent says 100 % done (after its last progress report at 70 %). The
    # graph ends at 100 %, and says how long it took and at what rate, in MiB/s.
    session.handle_event(NodeSnapshot("c", "node1", primary(100, active=False), now + 4))
    session.handle_event(NodeSnapshot("c", "node2", node("node2", module(state="SECOND")), now + 4))
    xs, ys = graph.curve_data()
    assert [float(y) for y in ys] == [10.0, 40.0, 70.0, 100.0]
    assert round(float(xs[-1]), 3) == 3.0
    assert len(graph.rate_data()[1]) == 3  # the end point has no measured rate
    assert graph.summary.text() == (
        "Last resynchronization of node2 from node1: complete, 100% — 100.0 MiB in 3.0s, "
        "30.0 MiB/s on average."
    )
    assert "MB/s" not in graph.summary.text()


def test_a_resync_the_console_saw_only_from_the_middle_says_so(
    qtbot: Any, aio: Any, tmp_path: Path
) -> None:
    session, detail = detail_on(qtbot, tmp_path)
    now = time.time()
    session.handle_event(NodeSnapshot("c", "node2", node("node2", module(state="SECOND",
                         readiness="Transient", uptodate=False)), now))  # fmt: skip
    session.handle_event(NodeSnapshot("c", "node1", primary(40, 20.0), now))  # opened here
    session.handle_event(NodeSnapshot("c", "node1", primary(100, active=False), now + 2))
    text = detail.graph.summary.text()
    assert text.endswith("in 2.0s, 30.0 MiB/s on average (watched from 40%)."), text


def test_an_empty_graph_has_sensible_axes(qtbot: Any) -> None:
    graph = ResyncGraph()
    qtbot.addWidget(graph)
    graph.resize(600, 300)
    graph.show()
    item = graph.plot.getPlotItem()
    (x0, x1), (y0, y1) = item.viewRange()
    assert (x0, x1) == pytest.approx((0.0, 60.0))  # a minute, not 0..1 of nothing
    assert y0 == pytest.approx(-2.0) and y1 == pytest.approx(102.0)  # 0..100 % (+2 % pad)
    assert graph.rate_view.viewRange()[1] == pytest.approx([0.0, 10.0])  # MiB/s
    for side, label in (("left", "done (%)"), ("bottom", "time since start (s)"),
                        ("right", "throughput (MiB/s)")):  # fmt: skip
        axis = item.getAxis(side)
        assert axis.labelString().endswith(f">{label}</span>") or label in axis.labelString()
        assert not axis.autoSIPrefix  # no "MB/s" or "ks" made up by pyqtgraph
    assert graph.summary.text() == "No resynchronization yet."
