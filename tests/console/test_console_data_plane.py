"""The real main window, fed the statuses agents send: a module whose data plane is down
on a node says so on that node's row of its card (and is not green), and the heartbeat
link chips carry the links' timings."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QLabel

from console.client.events import NodeSnapshot
from console.settings.clusters import make_entry
from console.settings.secrets import SecretStore
from console.ui.main_window import MainWindow
from console.ui.theme import style_sheet
from protos import mirrorpair_pb2 as pb
from tests.console.builders import module, node


def _window(tmp_path: Path, qtbot: Any) -> MainWindow:
    entry = make_entry("c", "127.0.0.1:1", "127.0.0.2:1", str(tmp_path / "ca.pem"),
                       str(tmp_path / "a.pem"), str(tmp_path / "a.key"))  # fmt: skip
    w = MainWindow([entry], SecretStore(), settings_path=None)
    w.setStyleSheet(style_sheet())  # the console's own sheet, as apply_theme sets it
    qtbot.addWidget(w)
    w.resize(1400, 800)
    w.show()
    return w


def test_a_data_plane_down_shows_on_its_nodes_card(qtbot: Any, aio: Any, tmp_path: Path) -> None:
    w = _window(tmp_path, qtbot)
    session, view = w.sessions["c"], w.views["c"]
    prim = module("web", vip="10.0.0.7/24", vip_held=True)
    prim.data_plane.CopyFrom(
        pb.DataPlaneInfo(pid=4242, version="0.1.0", role="primary", mode="replicate", mounts=1)
    )
    # What an agent reports once node2's data plane died (node_agent/core/machine.py).
    second = module("web", state="WAIT", readiness="NotReady", last_rule="data-plane",
                    reason="data plane died (Socket closed): restarting it")  # fmt: skip
    second.data_plane.CopyFrom(pb.DataPlaneInfo(pid=0, role="none"))
    n1 = node("node1", prim)
    n1.links[0].gap_p99_s, n1.links[0].gap_max_s = 0.51, 0.62
    n1.links[0].lateness_p99_s, n1.links[0].lateness_max_s = 0.04, 0.08
    n1.peer_alive, n1.peer_leaving_s = True, 14.2  # node2's agent restarting (SIGUSR2)
    now = time.time()
    session.handle_event(NodeSnapshot("c", "node1", n1, now))
    session.handle_event(NodeSnapshot("c", "node2", node("node2", second), now))

    card = view.card("web")
    assert "data plane down" in card.badge_texts("node2")
    shown = [b for b in card.findChildren(QLabel, "badge") if b.text() == "data plane down"]
    assert len(shown) == 1
    qtbot.waitUntil(shown[0].isVisible)  # laid out and on screen
    assert shown[0].property("colour") == "red"
    assert "not running" in shown[0].toolTip()
    assert "data plane down" not in card.badge_texts("node1")
    assert card.pill_colour("node2") == "red"
    view.select("web")  # the Swap button says why it cannot move web there
    assert not w.swap_action.isEnabled()
    assert "data plane on node2 is down" in w.swap_action.toolTip()
    assert "pid 4242" in card.rows["node1"].pill.toolTip()
    assert "1 mount" in card.rows["node1"].pill.toolTip()
    assert "node2 data plane: DOWN" in w.detail.subtitle.text()

    chips = [lb.text() for lb in view.columns["node1"].findChildren(QLabel, "linkChip")]
    assert "link0 up · gap p99 510 ms" in chips
    assert "link1 up" in chips  # nothing measured yet: no numbers made up
    # Alive on its word, not on heartbeats: not "peer answering".
    reach = view.columns["node1"].reach.text()
    assert reach == "online · peer's agent restarting (14 s left)", reach
    if os.environ.get("MIRRORPAIR_SHOT"):  # a look at it as an operator would
        qtbot.wait(100)  # let the deferred deletions and layouts run
        w.grab().save(os.environ["MIRRORPAIR_SHOT"])

    second.data_plane.pid = 5151  # started again: the badge goes, the colour comes back
    second.state, second.readiness = pb.STATE_SECOND, pb.READINESS_READY
    session.handle_event(NodeSnapshot("c", "node2", node("node2", second), now + 1))
    assert "data plane down" not in card.badge_texts("node2")
    assert card.pill_colour("node2") == "green"
