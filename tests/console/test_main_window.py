"""Several clusters in tabs with summary lights, the keyring warning, the cluster list
file, and the module detail's log filter and timeline."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from console.client.events import LogEntries
from console.model.states import Colour
from console.settings.clusters import load_clusters, make_entry
from console.settings.secrets import SecretStore
from console.ui.main_window import MainWindow
from protos import mirrorpair_pb2 as pb
from tests.console.live import TEST_TIMEOUTS, closed_port, entry_for, wait_for
from tests.integration.agents import LocalCluster
from tests.keyrings import MemoryKeyring


def test_two_clusters_with_summary_lights(
    qtbot: Any, run: Callable[..., Any], tmp_path: Path
) -> None:
    with LocalCluster(tmp_path / "cluster") as lc:
        lc.wait_settled("web")
        dead = make_entry(
            "dead",
            f"127.0.0.1:{closed_port()}",
            f"127.0.0.2:{closed_port()}",
            str(lc.cluster.ca),
            str(lc.cluster.admin_cert),
            str(lc.cluster.admin_key),
        )
        settings = tmp_path / "console.toml"
        w = MainWindow(
            [entry_for(lc), dead], SecretStore(), settings_path=settings, timeouts=TEST_TIMEOUTS
        )
        try:
            w.start()
            w.show()
            assert [w.tabs.tabText(i) for i in range(w.tabs.count())] == ["demo", "dead"]
            live, gone = w.sessions["demo"], w.sessions["dead"]
            wait_for(
                qtbot,
                lambda: live.model.summary_colour() is Colour.GREEN,
                15,
                "the live cluster is not green",
                lc.describe,
            )
            wait_for(
                qtbot,
                lambda: all(gone.model.node(n).error for n in ("node1", "node2")),
                15,
                "the dead cluster's nodes show no error",
            )
            assert gone.model.summary_colour() is Colour.RED
            assert "connection refused" in gone.model.node("node1").error
            warning = w.statusBar().findChild(QLabel, "keyringWarning")
            assert warning is not None and "No OS keyring" in warning.text()

            w._removed("dead")  # what "Remove cluster" does once confirmed
            assert list(w.sessions) == ["demo"] and w.tabs.count() == 1
            assert [e.name for e in load_clusters(settings)] == ["demo"]
        finally:
            run(w.shutdown(), 15)
            w.close()
            w.deleteLater()


def test_add_cluster_keeps_the_passphrase_in_the_keyring(
    qtbot: Any, run: Callable[..., Any], tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    settings = tmp_path / "console.toml"
    w = MainWindow([], SecretStore(), settings_path=settings, timeouts=TEST_TIMEOUTS)
    try:
        w.start()
        assert w.statusBar().findChild(QLabel, "keyringWarning") is None
        entry = make_entry(
            "site",
            f"127.0.0.1:{closed_port()}",
            "127.0.0.2:1",
            str(tmp_path / "ca.pem"),
            str(tmp_path / "c.pem"),
            str(tmp_path / "c.key"),
        )
        w._saved(None, entry, "pass phrase", True)  # the dialog's "Save"
        assert load_clusters(settings) == [entry]
        assert "pass phrase" not in settings.read_text()
        assert "pass phrase" in memory_keyring.store.values()
        node = w.sessions["site"].model
        wait_for(qtbot, lambda: node.node("node1").error != "", 10, "no error shown")
        assert "ca.pem" in node.node("node1").error  # the missing file is named
    finally:
        run(w.shutdown(), 15)
        w.close()
        w.deleteLater()


def test_log_filter_and_timeline(qtbot: Any, aio: Any, tmp_path: Path) -> None:
    entry = make_entry(
        "c",
        "127.0.0.1:1",
        "127.0.0.2:1",
        str(tmp_path / "ca.pem"),
        str(tmp_path / "a.pem"),
        str(tmp_path / "a.key"),
    )
    w = MainWindow([entry], SecretStore(), settings_path=None)
    qtbot.addWidget(w)
    session = w.sessions["c"]
    w.detail.set_module("web")
    t = time.time()
    entries = (
        pb.LogEntry(
            seq=1,
            time=t,
            node_id="node1",
            module="web",
            level="INFO",
            message="STOP/NOT_READY -> WAIT/TRANSIENT: looking for the peer",
            old_state=pb.STATE_STOP,
            new_state=pb.STATE_WAIT,
            cause="start",
        ),
        pb.LogEntry(
            seq=2,
            time=t + 1,
            node_id="node1",
            module="web",
            level="WARNING",
            message="checker http failed",
            cause="checker",
        ),
        pb.LogEntry(
            seq=3,
            time=t + 2,
            node_id="node1",
            module="db",
            level="ERROR",
            message="db start failed",
        ),
        pb.LogEntry(
            seq=4,
            time=t + 3,
            node_id="node1",
            module="",
            level="DEBUG",
            message="peer node2 answers",
        ),
    )
    session.handle_event(LogEntries("c", "node1", entries, False))
    proxy = w.detail.log_filter
    assert proxy.rowCount() == 2  # INFO and up, this module (and node-wide) only
    w.detail.level.setCurrentText("DEBUG")
    assert proxy.rowCount() == 3
    w.detail.all_modules.setChecked(True)
    assert proxy.rowCount() == 4
    w.detail.search.setText("CHECKER")
    assert proxy.rowCount() == 1
    assert "checker http failed" in proxy.index(0, 4).data()
    w.detail.level.setCurrentText("ERROR")
    assert proxy.rowCount() == 0
    assert w.detail.transitions.rowCount() == 1
    assert w.detail.transitions.index(0, 2).data() == "STOP NotReady → WAIT Transient"


def test_encrypted_key_with_its_passphrase_in_the_keyring(
    qtbot: Any, run: Callable[..., Any], tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    from dataclasses import replace

    from cryptography.hazmat.primitives import serialization

    from protos.security.ca import load_private_key

    with LocalCluster(tmp_path / "cluster") as lc:
        key = load_private_key(lc.cluster.admin_key)
        locked = tmp_path / "admin-locked.key"
        locked.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"desk passphrase"),
            )
        )
        entry = replace(entry_for(lc), key=locked)
        secrets = SecretStore()
        secrets.set(entry.name, "desk passphrase")  # in the (memory) keyring
        w = MainWindow([entry], SecretStore(), settings_path=None, timeouts=TEST_TIMEOUTS)
        try:
            w.start()
            model = w.sessions[entry.name].model
            wait_for(
                qtbot,
                lambda: model.reachable("node1") and model.reachable("node2"),
                15,
                "no connection with the encrypted key",
                lc.describe,
            )
        finally:
            run(w.shutdown(), 15)
            w.close()
            w.deleteLater()


def test_module_table_and_filter(qtbot: Any, aio: Any, tmp_path: Path) -> None:
    from console.client.events import NodeSnapshot
    from console.ui.module_table import SORT_ROLE
    from tests.console.builders import module, node

    entry = make_entry(
        "c",
        "127.0.0.1:1",
        "127.0.0.2:1",
        str(tmp_path / "ca.pem"),
        str(tmp_path / "a.pem"),
        str(tmp_path / "a.key"),
    )
    w = MainWindow([entry], SecretStore(), settings_path=None)
    qtbot.addWidget(w)
    w.show()
    session, view = w.sessions["c"], w.views["c"]
    now = time.time()
    session.handle_event(
        NodeSnapshot(
            "c",
            "node1",
            node(
                "node1",
                module("web"),
                module("db", state="ALONE", degraded=True),
                module("cams", state="SECOND", vip="10.0.0.7/24"),
            ),
            now,
        )
    )
    session.handle_event(
        NodeSnapshot(
            "c",
            "node2",
            node(
                "node2",
                module("web", state="SECOND"),
                module("db", state="WAIT", readiness="NotReady"),
                module("cams", vip="10.0.0.7/24", vip_held=True),
            ),
            now,
        )
    )
    assert view.column_of("cams") == "node2" and view.column_of("db") == "node1"

    view.table_toggle.setChecked(True)
    proxy = view.table_proxy
    assert proxy.rowCount() == 3
    view.table.sortByColumn(3, Qt.SortOrder.AscendingOrder)  # node2's state, worst first
    assert proxy.index(0, 0).data() == "db"
    assert proxy.index(0, 3).data(SORT_ROLE) == 0  # red
    assert "degraded" in proxy.index(0, 6).data()

    view.filter.setText("10.0.0.7")
    assert proxy.rowCount() == 1 and proxy.index(0, 0).data() == "cams"
    assert not view.card("cams").isHidden() and view.card("web").isHidden()
    view._table_clicked(proxy.index(0, 0))
    assert view.selected == "cams" and "Swap cams" in w.swap_action.text()
    view.filter.clear()
    assert not view.card("web").isHidden()
