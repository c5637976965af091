"""Opening the setup wizard from the console window: "Set up a new cluster…" and "Edit
configuration…" of the Cluster menu. The window's caller gives the backend factory
(console.client.setup_client makes the real backends); without one both are disabled."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QMessageBox

from console.settings.clusters import ClusterEntry
from console.setup.backend import SetupBackend, SetupError
from console.setup.flow import SetupFlow
from console.ui.restore_dialog import RestoreDialog
from console.ui.setup_wizard import SetupWizard

if TYPE_CHECKING:
    from console.ui.main_window import MainWindow

# The backend for a new cluster (None) or for the cluster to edit.
SetupBackendFactory = Callable[[ClusterEntry | None], SetupBackend]


class SetupLauncher(QObject):
    def __init__(self, window: MainWindow, factory: SetupBackendFactory | None) -> None:
        super().__init__(window)
        self.window, self.factory = window, factory
        self.wizard: SetupWizard | None = None
        self.task: asyncio.Future[None] | None = None
        self.restore: RestoreDialog | None = None

    @property
    def available(self) -> bool:
        return self.factory is not None

    def open_new(self) -> SetupWizard | None:
        """The wizard for a new cluster (nothing is changed before its Finish)."""
        factory = self.factory
        if factory is None:
            return None
        return self._show(SetupWizard(lambda: factory(None), parent=self.window))

    def open_edit(self, entry: ClusterEntry) -> None:
        """The wizard over ``entry``'s running configuration, once it has been read."""
        factory = self.factory
        if factory is None:
            return
        bar = self.window.statusBar()

        async def load() -> None:
            bar.showMessage(f"Reading the configuration of {entry.name}…")
            try:
                wizard = await SetupWizard.edit(lambda: factory(entry), self.window)
            except SetupError as e:
                bar.clearMessage()
                QMessageBox.warning(self.window, "Configuration not read", f"{entry.name}: {e}")
                return
            bar.clearMessage()
            self._show(wizard)

        self.task = asyncio.ensure_future(load())

    def open_restore(self, entry: ClusterEntry) -> RestoreDialog | None:
        """The versions ``entry``'s servers keep, to apply one again."""
        if self.factory is None:
            return None
        self.restore = RestoreDialog(entry.name, self.factory(entry), self.window)  # type: ignore[arg-type]
        self.restore.open()
        return self.restore

    def _show(self, wizard: SetupWizard) -> SetupWizard:
        self.wizard = wizard
        wizard.applied.connect(lambda flow: self._applied(wizard, flow))
        wizard.open()
        return wizard

    def _applied(self, wizard: SetupWizard, flow: SetupFlow) -> None:
        version = flow.outcome.version if flow.outcome is not None else flow.version
        self.window.statusBar().showMessage(
            f"{flow.cluster_name}: configuration version {version} runs on both servers", 15000
        )
        # A new cluster: the backend that paired it knows where it put the console's
        # certificate and key, and may give the entry to watch the cluster with.
        make_entry = getattr(wizard.backend, "cluster_entry", None)
        if flow.editing or make_entry is None or flow.cluster_name in self.window.sessions:
            return
        entry = make_entry(flow)
        if isinstance(entry, ClusterEntry):
            self.window.add_entry(entry)
