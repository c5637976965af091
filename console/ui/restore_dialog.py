"""Cluster ▸ Restore an earlier configuration…: the versions the servers keep, and the
selected one applied again (as a new version, on both servers or neither)."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from console.setup.backend import ApplyOutcome, SetupError
from console.setup.versions import ConfigVersion

COLUMNS = ("Version", "Applied", "By", "Runs on")


class VersionsBackend(Protocol):
    async def config_versions(self) -> list[ConfigVersion]: ...

    async def restore(self, version: int) -> ApplyOutcome: ...


class RestoreDialog(QDialog):
    def __init__(self, cluster: str, backend: VersionsBackend, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("restoreDialog")
        self.setWindowTitle(f"Restore a configuration of {cluster}")
        self.backend = backend
        self.versions: list[ConfigVersion] = []
        self.task: asyncio.Future[None] | None = None
        self.model = QStandardItemModel(0, len(COLUMNS), self)
        self.model.setHorizontalHeaderLabels(list(COLUMNS))
        self.table = QTableView()
        self.table.setObjectName("versionTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().hide()
        self.status = QLabel("Reading the versions the servers keep…")
        self.status.setObjectName("restoreStatus")
        self.status.setWordWrap(True)
        self.restore_button = QPushButton("Restore on both servers")
        self.restore_button.setObjectName("restoreButton")
        self.restore_button.setEnabled(False)
        self.restore_button.clicked.connect(self._restore)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.restore_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        self.resize(640, 360)
        self.table.selectionModel().selectionChanged.connect(self._selected)
        self.task = asyncio.ensure_future(self._load())

    async def _load(self) -> None:
        try:
            self.versions = await self.backend.config_versions()
        except SetupError as e:
            self.status.setText(f"✖ {e}")
            return
        self.model.removeRows(0, self.model.rowCount())
        for v in self.versions:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(v.applied_at))
            row = [str(v.version), when if v.applied_at else "—", v.applied_by or "by hand",
                   ", ".join(v.running_on) or "—"]  # fmt: skip
            self.model.appendRow([QStandardItem(text) for text in row])
        self.table.resizeColumnsToContents()  # the dates in full
        self.status.setText("Choose the version to apply again: it becomes a new version, "
                            "applied to both servers or to neither.")  # fmt: skip

    def selected(self) -> ConfigVersion | None:
        rows = self.table.selectionModel().selectedRows()
        return self.versions[rows[0].row()] if rows else None

    def _selected(self, *_: object) -> None:
        v = self.selected()
        running = v is not None and len(v.running_on) == 2
        self.restore_button.setEnabled(v is not None and not running)
        if v is not None:
            self.restore_button.setText(f"Restore version {v.version} on both servers")

    def _restore(self) -> None:
        v = self.selected()
        if v is None:
            return
        self.restore_button.setEnabled(False)
        self.status.setText(f"Applying version {v.version} again on node1 and node2…")
        self.task = asyncio.ensure_future(self._run(v.version))

    async def _run(self, version: int) -> None:
        try:
            outcome = await self.backend.restore(version)
        except SetupError as e:
            self.status.setText(f"✖ {e}")
            self._selected()
            return
        if outcome.applied:
            self.status.setText(f"✔ Version {version} runs again on both servers, as version "
                                f"{outcome.version}.")  # fmt: skip
            await self._load()
            return
        why = "; ".join(f"{n}: {r}" for n, r in sorted(outcome.refused.items()))
        self.status.setText(f"✖ Not restored, neither server changed: {why}")
        self._selected()
