"""The console window: one tab per cluster (with its summary light), the Swap button,
the module detail dock, the alert list, the tray icon and the keyring warning."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QMessageBox,
    QTabWidget,
    QToolBar,
)

from console.client.node_client import Timeouts
from console.model.alerts import Alert
from console.model.migration import plan_swap
from console.model.states import Colour, worst
from console.settings.clusters import ClusterEntry, SettingsError, save_clusters
from console.settings.secrets import SecretStore, SecretStoreError
from console.ui.alert_list import AlertList
from console.ui.cluster_dialog import ClusterDialog
from console.ui.cluster_view import ClusterView
from console.ui.confirm import Confirmer
from console.ui.detail_panel import ModuleDetail
from console.ui.flows import CommandFlows
from console.ui.session import ClusterSession
from console.ui.setup_launch import SetupBackendFactory, SetupLauncher
from console.ui.theme import app_icon, light_icon
from console.ui.tray import TrayNotifier


class MainWindow(QMainWindow):
    closed = Signal()

    def __init__(
        self,
        entries: list[ClusterEntry],
        secrets: SecretStore,
        *,
        settings_path: Path | None = None,
        timeouts: Timeouts | None = None,
        setup_backends: SetupBackendFactory | None = None,
    ) -> None:
        super().__init__()
        self.secrets, self.settings_path, self.timeouts = secrets, settings_path, timeouts
        self.setup = SetupLauncher(self, setup_backends)
        self.entries = list(entries)
        self.sessions: dict[str, ClusterSession] = {}
        self.views: dict[str, ClusterView] = {}
        self.flows: dict[str, CommandFlows] = {}
        self.setWindowTitle("MirrorPair Console")
        self.setWindowIcon(app_icon())
        self.resize(1400, 860)
        self.confirmer = Confirmer(self)
        self.notifier = TrayNotifier(self, self)

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.currentChanged.connect(self._tab_changed)
        self.setCentralWidget(self.tabs)
        self.empty = QLabel("No cluster yet.\nUse “Add cluster…” to watch one.")
        self.empty.setObjectName("emptyColumn")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._build_toolbar()
        self._build_menu()
        self._build_docks()
        self._build_status_bar()
        self.notifier.notified.connect(self._alert_listed)

        # A steady tick: fades command results, moves the timeline's "now", and shows the
        # GUI thread is alive (tests count its ticks while an agent hangs).
        self.tick = QTimer(self)
        self.tick.setInterval(1000)
        self.tick.timeout.connect(self._on_tick)
        for entry in self.entries:
            self._add_session(entry)
        self._update_empty()

    # ----- construction -------------------------------------------------------------------
    def _build_toolbar(self) -> None:
        bar = QToolBar("Main")
        bar.setMovable(False)
        bar.setIconSize(QSize(18, 18))
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        brand = QLabel("MirrorPair")
        brand.setObjectName("brand")
        bar.addWidget(brand)
        self.swap_action = QAction("⇄  Swap", self)
        self.swap_action.setToolTip("Move the selected module to its other node")
        self.swap_action.triggered.connect(self.swap_selected)
        bar.addAction(self.swap_action)
        bar.widgetForAction(self.swap_action).setObjectName("swapButton")
        bar.addSeparator()
        bar.addAction("Add cluster…", self._add_cluster)
        self.edit_action = bar.addAction("Edit cluster…", self._edit_cluster)
        self.remove_action = bar.addAction("Remove cluster", self._remove_cluster)
        self.addToolBar(bar)

    def _build_menu(self) -> None:
        menu = self.menuBar().addMenu("&Cluster")
        menu.setObjectName("clusterMenu")
        self.setup_action = menu.addAction("Set up a new cluster…", self.setup.open_new)
        self.setup_action.setObjectName("setupClusterAction")
        self.config_action = menu.addAction("Edit configuration…", self._edit_config)
        self.config_action.setObjectName("editConfigAction")
        self.restore_action = menu.addAction(
            "Restore an earlier configuration…", self._restore_config
        )
        self.restore_action.setObjectName("restoreConfigAction")
        if not self.setup.available:
            self.setup_action.setEnabled(False)
        menu.addSeparator()
        menu.addAction("Add cluster…", self._add_cluster)
        menu.addAction("Edit cluster…", self._edit_cluster)
        menu.addAction("Remove cluster", self._remove_cluster)

    def _restore_config(self) -> None:
        session = self.current_session()
        if session is not None:
            self.setup.open_restore(session.entry)

    def _edit_config(self) -> None:
        session = self.current_session()
        if session is not None:
            self.setup.open_edit(session.entry)

    def _build_docks(self) -> None:
        self.detail = ModuleDetail()
        dock = QDockWidget("Module detail", self)
        dock.setObjectName("detailDock")
        dock.setWidget(self.detail)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self.resizeDocks([dock], [600], Qt.Orientation.Horizontal)
        self.alerts = AlertList()
        self.alerts_dock = QDockWidget("Alerts", self)
        self.alerts_dock.setObjectName("alertsDock")
        self.alerts_dock.setWidget(self.alerts)
        self.alerts_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.alerts.unacknowledged_changed.connect(
            lambda n: self.alerts_dock.setWindowTitle(f"Alerts — {n} new" if n else "Alerts")
        )
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.alerts_dock)
        self.resizeDocks([self.alerts_dock], [110], Qt.Orientation.Vertical)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        if not self.secrets.available():
            warn = QLabel("⚠ No OS keyring: passphrases are not saved")
            warn.setObjectName("keyringWarning")
            warn.setToolTip(self.secrets.unavailable_message())
            bar.addPermanentWidget(warn)
        # How alerts pop up (tray, desktop notification service) or why they cannot.
        self.delivery = QLabel()
        self.delivery.setObjectName("notificationDelivery")
        self._show_delivery(self.notifier.delivery)
        self.notifier.delivery_changed.connect(self._show_delivery)
        bar.addPermanentWidget(self.delivery)
        self.clock = QLabel("")
        bar.addPermanentWidget(self.clock)

    def _show_delivery(self, text: str) -> None:
        unavailable = text.startswith("no desktop notifications")
        self.delivery.setText(f"⚠ {text}" if unavailable else f"Alerts: {text}")
        self.delivery.setToolTip(
            "Alerts stay in the list below; they cannot pop up on this desktop"
            if unavailable
            else "How failovers, degraded replication and split brains pop up"
        )
        self.delivery.setProperty("warning", "yes" if unavailable else "no")
        self.delivery.style().unpolish(self.delivery)
        self.delivery.style().polish(self.delivery)

    # ----- sessions -------------------------------------------------------------------------
    def _add_session(self, entry: ClusterEntry) -> ClusterSession:
        session = ClusterSession(entry, self.secrets, self.timeouts, self)
        flows = CommandFlows(session, self.confirmer, self)
        view = ClusterView(session, flows)
        view.module_selected.connect(lambda m, s=session: self._module_selected(s, m))
        view.hover_message.connect(lambda text: self.statusBar().showMessage(text, 8000))
        session.changed.connect(lambda s=session: self._cluster_changed(s))
        session.alert.connect(self.notifier.notify)
        self.sessions[entry.name], self.views[entry.name] = session, view
        self.flows[entry.name] = flows
        self.tabs.addTab(view, light_icon(Colour.GREY), entry.name)
        return session

    def start(self) -> None:
        """Start watching every cluster (call with the event loop set up)."""
        for session in self.sessions.values():
            session.start()
        self.tick.start()
        self._tab_changed(self.tabs.currentIndex())

    async def shutdown(self) -> None:
        self.tick.stop()
        await asyncio.gather(*(s.close() for s in self.sessions.values()), return_exceptions=True)
        await self.notifier.close()

    def current_view(self) -> ClusterView | None:
        w = self.tabs.currentWidget()
        return w if isinstance(w, ClusterView) else None

    def current_session(self) -> ClusterSession | None:
        view = self.current_view()
        return view.session if view is not None else None

    # ----- reactions ------------------------------------------------------------------------
    def _tab_changed(self, _index: int) -> None:
        view = self.current_view()
        self.detail.set_session(view.session if view is not None else None)
        if view is not None and view.selected:
            self.detail.set_module(view.selected)
        self._update_swap()

    def _module_selected(self, session: ClusterSession, module: str) -> None:
        if session is self.current_session():
            self.detail.set_module(module)
            self._update_swap()

    def _cluster_changed(self, session: ClusterSession) -> None:
        index = self.tabs.indexOf(self.views[session.name])
        colour = session.model.summary_colour()
        self.tabs.setTabIcon(index, light_icon(colour))
        overall = worst(s.model.summary_colour() for s in self.sessions.values())
        lines = [f"{s.name}: {s.model.summary_colour().value}" for s in self.sessions.values()]
        self.notifier.set_colour(overall, "MirrorPair\n" + "\n".join(lines))
        if session is self.current_session():
            self._update_swap()

    def _update_swap(self) -> None:
        view = self.current_view()
        if view is None or not view.selected:
            self.swap_action.setEnabled(False)
            self.swap_action.setToolTip("Select a module first")
            return
        plan = plan_swap(
            view.session.model, view.selected, busy=view.session.ops.busy(view.selected)
        )
        # Disabled when it cannot work; the tooltip (shown on the disabled button too)
        # says why, or what a swap will do.
        self.swap_action.setEnabled(plan.ok)
        self.swap_action.setText(f"⇄  Swap {view.selected}")
        self.swap_action.setToolTip(plan.reason if plan.ok else f"No swap possible: {plan.reason}")

    def swap_selected(self) -> None:
        view = self.current_view()
        if view is not None and view.selected:
            self.flows[view.session.name].request_swap(view.selected)

    def _alert_listed(self, alert: Alert) -> None:
        self.alerts.add(alert)
        self.statusBar().showMessage(alert.title, 15000)

    def _on_tick(self) -> None:
        self.clock.setText(time.strftime("%H:%M:%S"))
        self._update_swap()  # an operation on the module may have ended
        for view in self.views.values():
            view.fade_operations()
        self.detail.strip.update()

    def _update_empty(self) -> None:
        if self.sessions and self.tabs.indexOf(self.empty) >= 0:
            self.tabs.removeTab(self.tabs.indexOf(self.empty))
        elif not self.sessions and self.tabs.indexOf(self.empty) < 0:
            self.tabs.addTab(self.empty, "Welcome")
        self.edit_action.setEnabled(bool(self.sessions))
        self.config_action.setEnabled(bool(self.sessions) and self.setup.available)
        self.restore_action.setEnabled(bool(self.sessions) and self.setup.available)
        self.remove_action.setEnabled(bool(self.sessions) and self.settings_path is not None)

    # ----- cluster list ------------------------------------------------------------------
    def _add_cluster(self) -> None:
        self._open_dialog(None)

    def _edit_cluster(self) -> None:
        session = self.current_session()
        if session is not None:
            self._open_dialog(session.entry)

    def _open_dialog(self, entry: ClusterEntry | None) -> None:
        dialog = ClusterDialog(self.secrets, entry, self)
        dialog.saved.connect(lambda e, p, keep: self._saved(entry, e, p, keep))
        dialog.open()

    def add_entry(self, entry: ClusterEntry) -> None:
        """Watch a cluster set up from this console (the setup wizard's new cluster)."""
        self._saved(None, entry, "", False)

    def _saved(
        self, old: ClusterEntry | None, new: ClusterEntry, passphrase: str, keep: bool
    ) -> None:
        names = {e.name for e in self.entries if e is not old}
        if new.name in names:
            QMessageBox.warning(self, "Cluster exists", f"A cluster named {new.name} exists.")
            return
        try:
            if passphrase:
                self.secrets.set(new.name, passphrase, persist=keep)
        except SecretStoreError as e:
            self.statusBar().showMessage(str(e), 15000)
        if old is not None:
            self._drop_session(old.name)
            self.entries = [new if e is old else e for e in self.entries]
        else:
            self.entries.append(new)
        self._persist()
        session = self._add_session(new)
        session.start()
        self.tabs.setCurrentWidget(self.views[new.name])
        self._update_empty()

    def _remove_cluster(self) -> None:
        session = self.current_session()
        if session is None:
            return
        name = session.name
        self.confirmer.ask(
            f"Remove {name}?",
            f"Stop watching cluster {name}? The agents are not affected.",
            lambda: self._removed(name),
            yes_text="Remove",
        )

    def _removed(self, name: str) -> None:
        self._drop_session(name)
        self.entries = [e for e in self.entries if e.name != name]
        self.secrets.delete(name)
        self._persist()
        self._update_empty()

    def _drop_session(self, name: str) -> None:
        session, view = self.sessions.pop(name), self.views.pop(name)
        self.flows.pop(name)
        self.tabs.removeTab(self.tabs.indexOf(view))
        view.deleteLater()
        task = asyncio.ensure_future(session.close())
        task.add_done_callback(lambda _t: session.deleteLater())

    def _persist(self) -> None:
        if self.settings_path is None:
            return  # opened with --cluster-config: nothing to save
        try:
            save_clusters(self.settings_path, self.entries)
        except (OSError, SettingsError) as e:
            QMessageBox.warning(self, "Settings not saved", f"{self.settings_path}: {e}")

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        event.accept()
        with contextlib.suppress(RuntimeError):
            self.closed.emit()
