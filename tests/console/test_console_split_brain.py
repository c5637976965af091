"""Split brain in the console against two REAL agents: the operator chooses the survivor.

The split brain is made as it happens in the field, one node at a time: node1 serves
alone, stops; node2 is forced primary and serves alone, stops; both come back with
histories that diverged. node1 was primary first, so it serves and node2 waits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QWidget

from console.ui.main_window import MainWindow
from protos import mirrorpair_pb2 as pb
from tests.console.live import console_window, wait_for
from tests.integration.agents import LocalCluster


def make_split_brain(lc: LocalCluster) -> None:
    lc.wait_settled("web")
    lc.stop("node2")
    lc.wait_state("node1", "web", "ALONE", "Ready")
    lc.stop("node1")
    lc.start("node2")
    lc.wait_state("node2", "web", "WAIT")
    out = lc.client("node2").command("web", "prim", "tester")
    assert out.accepted, out.message
    lc.wait_state("node2", "web", "ALONE", "Ready")
    lc.stop("node2")
    lc.start("node1")
    lc.start("node2")
    m = lc.wait_state("node2", "web", "WAIT", "NOT_READY", timeout=30)
    assert m.split_brain, (m.reason, lc.describe())
    lc.wait_state("node1", "web", "ALONE", "Ready")


@pytest.fixture
def lc(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path / "cluster") as cluster:
        make_split_brain(cluster)
        yield cluster


@pytest.fixture
def window(qtbot: Any, run: Callable[..., Any], lc: LocalCluster) -> Iterator[MainWindow]:
    with console_window(qtbot, run, lc) as w:
        yield w


def survivor_actions(window: MainWindow) -> dict[str, Any]:
    view = window.current_view()
    assert view is not None
    menu = view.flows.build_menu("web", QWidget(window))
    return {a.text(): a for a in menu.actions() if a.text().startswith("Keep ")}


def test_keeping_the_serving_copy_makes_the_other_node_secondary(
    qtbot: Any, window: MainWindow, lc: LocalCluster
) -> None:
    view = window.current_view()
    assert view is not None
    wait_for(
        qtbot,
        lambda: (
            "web" in view.cards
            and view.card("web").state_text("node1") == "ALONE · Ready"
            and "split brain" in view.card("web").badge_texts("node2")
        ),
        20,
        "the console did not show node1 serving and node2 in split brain",
        lc.describe,
    )
    actions = survivor_actions(window)
    assert set(actions) == {"Keep node1's copy…", "Keep node2's copy…"}
    assert actions["Keep node1's copy…"].isEnabled()
    # node2 does not serve: keeping its copy needs node1 stopped first, and says so.
    assert not actions["Keep node2's copy…"].isEnabled()
    assert "stop web on node1" in actions["Keep node2's copy…"].toolTip()

    actions["Keep node1's copy…"].trigger()
    first = window.confirmer.current
    assert first is not None and "Keep node1's copy of web" in first.windowTitle()
    assert "quarantine" in first.informativeText()
    window.confirmer.answer(True)
    second = window.confirmer.current
    assert second is not None and second is not first  # asked twice
    assert lc.module("node2", "web").split_brain  # nothing sent before the second yes
    window.confirmer.answer(True)

    wait_for(
        qtbot,
        lambda: (
            view.card("web").state_text("node1") == "PRIM · Ready"
            and view.card("web").state_text("node2") == "SECOND · Ready"
        ),
        30,
        "the console did not show node2 resynced as secondary",
        lc.describe,
    )
    # The agent's own log: node2 obeyed the console's `second` (what it does with the
    # data, quarantine then resync, is test_engine_replication's split-brain test).
    took = lc.client("node2").logs("web", 500, "DEBUG")
    assert any(e.cause == "second" and "console" in e.who for e in took), lc.describe()
    assert any(e.cause == "second" and e.new_state == pb.STATE_SECOND for e in took)
    assert not lc.module("node2", "web").split_brain
