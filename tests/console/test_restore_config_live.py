"""Cluster ▸ Restore an earlier configuration… against two real agents: the versions both
servers keep are listed, and the chosen one is applied again as a new version on both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QItemSelectionModel

from console.client.setup_client import SetupClient
from console.settings.secrets import SecretStore
from console.setup.versions import with_version
from console.ui.restore_dialog import RestoreDialog
from tests.console.live import entry_for, wait_for
from tests.integration.agents import LocalCluster


@pytest.fixture
def lc(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path / "cluster") as cluster:
        cluster.wait_settled("web")
        yield cluster


def running(lc: LocalCluster) -> dict[str, int]:
    return {n: lc.client(n).config().version
            for n in ("node1", "node2")}  # fmt: skip


def test_an_earlier_version_is_applied_again_on_both(
    qtbot: Any, run: Any, lc: LocalCluster, tmp_path: Path
) -> None:
    client = SetupClient.for_entry(entry_for(lc), SecretStore(), tmp_path / "desk")
    first = run(client.running_config(), 10)
    # Version 2: the web module's checker interval changed.
    second = with_version(first, 2).replace("interval_s = 2", "interval_s = 3", 1)
    assert second != with_version(first, 2), "the demo config's checker changed: update"
    outcome = run(client.apply(second, running(lc)), 60)
    assert outcome.applied, outcome.refused
    assert running(lc) == {"node1": 2, "node2": 2}

    dialog = RestoreDialog("demo", client)
    qtbot.addWidget(dialog)
    dialog.show()
    wait_for(qtbot, lambda: dialog.model.rowCount() == 2, 10, dialog.status.text())
    assert [v.version for v in dialog.versions] == [2, 1]
    assert dialog.versions[0].running_on == ("node1", "node2")
    assert not dialog.restore_button.isEnabled()
    index = dialog.model.index(1, 0)  # version 1
    dialog.table.selectionModel().select(
        index, QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    )
    assert dialog.restore_button.isEnabled() and "version 1" in dialog.restore_button.text()
    dialog.restore_button.click()
    wait_for(qtbot, lambda: "runs again" in dialog.status.text(), 60, dialog.status.text())
    assert "as version 3" in dialog.status.text()
    assert running(lc) == {"node1": 3, "node2": 3}
    now = run(client.running_config(), 10)
    assert now == with_version(first, 3)  # version 1's text (secret masked alike)
    wait_for(qtbot, lambda: dialog.model.rowCount() == 3, 10, "the list shows version 3")
