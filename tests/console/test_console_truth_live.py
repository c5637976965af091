"""What the operator sees must be true, against two REAL agents (LocalCluster): a normal
start-up is not shown as alarms, a module serving alone is amber and "not protected",
a planned stop or swap is not a red "Failover", and redundancy restored is announced."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel

from console.model.alerts import AlertKind, Severity
from console.model.states import Colour
from console.ui.main_window import MainWindow
from console.ui.theme import colour_hex
from protos import mirrorpair_pb2 as pb
from tests.console.live import console_window, wait_for
from tests.integration.agents import LocalCluster


@pytest.fixture
def lc(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path / "cluster") as cluster:
        cluster.wait_settled("web")
        yield cluster


@pytest.fixture
def window(qtbot: Any, run: Callable[..., Any], lc: LocalCluster) -> Iterator[MainWindow]:
    with console_window(qtbot, run, lc) as w:
        yield w


def settled(qtbot: Any, w: MainWindow, lc: LocalCluster) -> tuple[str, str]:
    primary, secondary = lc.wait_settled("web")
    view = w.current_view()
    assert view is not None
    wait_for(
        qtbot,
        lambda: (
            "web" in view.cards
            and view.card("web").state_text(primary) == "PRIM · Ready"
            and view.card("web").state_text(secondary) == "SECOND · Ready"
        ),
        20,
        "the console did not show the settled pair",
        lc.describe,
    )
    return primary, secondary


def test_a_normal_start_up_and_stop_are_not_shown_as_alarms(
    qtbot: Any, window: MainWindow, lc: LocalCluster
) -> None:
    _, secondary = settled(qtbot, window, lc)
    view = window.current_view()
    assert view is not None
    view.select("web")
    detail = window.detail
    # web replicates nothing here: no data plane is named; the heartbeat chips carry the
    # gaps the agents measured.
    card = view.card("web")
    for n in ("node1", "node2"):
        assert "data plane" not in card.rows[n].pill.toolTip() + " ".join(card.badge_texts(n))
        chips = lambda n=n: [c.text() for c in view.columns[n].findChildren(QLabel, "linkChip")]  # noqa: E731
        wait_for(qtbot, lambda c=chips: any("gap p99" in t for t in c()), 10, "no link timing")
    # The agents' own start-up (both started, one elected, the other waited and
    # joined), then an operator stops the secondary.
    wait_for(qtbot, lambda: detail.transitions.rowCount() >= 6, 10, "no start-up transitions")
    rc, out, err = lc.cli("stop", "web", "--node", secondary, "--yes")
    assert rc == 0, out + err
    wait_for(
        qtbot,
        lambda: any("→ STOP" in (detail.transitions.index(i, 2).data() or "")
                    for i in range(detail.transitions.rowCount())),
        15,
        "the stop is not in the timeline",
        lc.describe,
    )  # fmt: skip
    model = detail.transitions
    fg = Qt.ItemDataRole.ForegroundRole
    rows = [
        (model.index(i, 2).data(), model.index(i, 3).data(), model.index(i, 2).data(fg).color())
        for i in range(model.rowCount())
    ]
    red = QColor(colour_hex("red")).lighter(130)  # how the table draws a red state
    alarms = [r for r in rows if r[2] == red]
    assert not alarms, f"start-up or stop shown red: {alarms}\nall: {rows}"
    assert any("WAIT" in r[0] for r in rows), rows  # the waits are there, just not red
    grey = QColor(colour_hex("grey")).lighter(130)
    assert [r[2] for r in rows if r[0].endswith("→ STOP NotReady")] == [grey], rows
    # The log view: a start-up's and an operator's transitions are INFO, as the agent
    # logs them now (an older agent logged every WAIT and ALONE at WARNING: the console
    # re-levels those by cause, tests/console/test_model_history.py).
    logs = detail.logs
    shown = [logs.record(i) for i in range(logs.rowCount())]
    transitions = [r for r in shown if r.module == "web" and r.is_transition]
    assert any("WAIT" in r.message for r in transitions), transitions
    assert [r for r in transitions if r.shown_level != "INFO"] == []
    strip = detail.strip._records  # the painted timeline: the same colours
    assert all(r.colour != "red" for r in strip), [(r.transition_text(), r.cause) for r in strip]


def alert_kinds(w: MainWindow) -> list[AlertKind]:
    return [a.kind for a in w.notifier.history]


def test_alone_is_amber_not_protected_then_redundancy_restored(
    qtbot: Any, window: MainWindow, lc: LocalCluster
) -> None:
    primary, secondary = settled(qtbot, window, lc)
    view = window.current_view()
    assert view is not None
    card = view.card("web")
    assert window.sessions["demo"].model.summary_colour() is Colour.GREEN
    rc, out, err = lc.cli("stop", "web", "--node", secondary, "--yes")
    assert rc == 0, out + err
    wait_for(
        qtbot,
        lambda: card.state_text(primary) == "ALONE · Ready",
        15,
        f"{primary} did not turn ALONE",
        lc.describe,
    )
    assert lc.module(primary, "web").state == pb.STATE_ALONE  # the agent says so
    # Serving without a copy: amber everywhere the module shows, never green.
    # (The stopped secondary is red, per DESIGN §3: the card's stripe and the cluster's
    # light show the worst of the two.)
    assert card.pill_colour(primary) == "orange"
    assert "not protected" in card.badge_texts(primary)
    assert card.stripe.property("colour") != "green"
    assert window.sessions["demo"].model.summary_colour() is not Colour.GREEN
    table = view.table_model
    row = next(i for i in range(table.rowCount()) if table.module_at(i) == "web")
    assert "not protected" in table.index(row, 6).data()
    assert AlertKind.FAILOVER not in alert_kinds(window)

    rc, out, err = lc.cli("start", "web", "--node", secondary, "--yes")
    assert rc == 0, out + err
    wait_for(
        qtbot,
        lambda: AlertKind.RESTORED in alert_kinds(window),
        30,
        "no 'redundancy restored' notice",
        lambda: f"{alert_kinds(window)}\n{lc.describe()}",
    )
    restored = [a for a in window.notifier.history if a.kind is AlertKind.RESTORED]
    assert len(restored) == 1, window.notifier.history
    assert restored[0].title == "web: redundancy restored"
    assert card.state_text(primary) == "PRIM · Ready" and card.pill_colour(primary) == "green"
    assert "redundancy restored" in window.alerts.texts()[0]  # the newest in the list


def test_a_planned_stop_of_the_primary_is_not_a_failover(
    qtbot: Any, window: MainWindow, lc: LocalCluster
) -> None:
    primary, secondary = settled(qtbot, window, lc)
    flows = window.flows["demo"]
    flows.request_command("web", pb.COMMAND_STOP, primary)  # as the menu does
    window.confirmer.answer(True)
    view = window.current_view()
    assert view is not None
    wait_for(
        qtbot,
        lambda: view.column_of("web") == secondary,
        20,
        "the secondary did not take over",
        lc.describe,
    )
    wait_for(qtbot, lambda: AlertKind.MOVED in alert_kinds(window), 5, "no 'moved' notice")
    assert AlertKind.FAILOVER not in alert_kinds(window), window.notifier.history
    moved = next(a for a in window.notifier.history if a.kind is AlertKind.MOVED)
    assert moved.severity is Severity.INFO
    assert f"{primary} was stopped by " in moved.message, moved.message
    assert lc.module(secondary, "web").state == pb.STATE_ALONE  # the agents agree
