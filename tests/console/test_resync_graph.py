"""The resync graph fed through the real model path: ModuleStatus snapshots with resync
progress -> ClusterSession -> ResyncHistory -> ModuleDetail's pyqtgraph curves.
(A live resync between real agents needs the replication of issue 3.)"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from console.client.events import NodeSnapshot
from console.settings.clusters import make_entry
from console.settings.secrets import SecretStore
from console.ui.detail_panel import ModuleDetail
from console.ui.session import ClusterSession
from tests.console.builders import module, node

MIB = 1 << 20


def test_graph_follows_resync_progress(qtbot: Any, aio: Any, tmp_path: Path) -> None:
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

    now = time.time()
    session.handle_event(NodeSnapshot("c", "node1", node("node1", module()), now))
    for i, done in enumerate((10, 40, 70)):
        status = node(
            "node2",
            module(
                state="SECOND",
                readiness="Transient",
                uptodate=False,
                resync=(done * MIB, 100 * MIB, 30.0 * MIB, 30.0 - i),
            ),
        )
        session.handle_event(NodeSnapshot("c", "node2", status, now + i))

    xs, ys = detail.graph.curve_data()
    assert [float(y) for y in ys] == [10.0, 40.0, 70.0]
    assert [round(float(x), 3) for x in xs] == [0.0, 1.0, 2.0]
    assert detail.graph.point_count() == 3
    text = detail.graph.summary.text()
    assert "Resynchronizing node2 from node1: 70.0%" in text and "ETA 28s" in text
    assert "30.0 MiB/s" in text
    card_badges = [b.text for b in session.model.module("web").nodes["node2"].badges]
    assert card_badges[0] == "resync 70% · ETA 28s · 30.0 MiB/s"

    # Done: the series stays, the summary says it is over.
    session.handle_event(NodeSnapshot("c", "node2", node("node2", module(state="SECOND")), now + 3))
    assert detail.graph.point_count() == 3
    assert detail.graph.summary.text().startswith(
        "Last resynchronization of node2 from node1: reached 70.0%"
    )
