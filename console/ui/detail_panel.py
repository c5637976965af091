"""Module detail: state timeline, logs (filter by level and text), checkers, the
resync progress graph and (a vm module) its guest — for the module selected in the
cluster view."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from console.model.cluster import NODE_IDS
from console.model.data_plane import data_plane_line
from console.model.history import LogRecord
from console.model.vm_facts import vm_facts
from console.ui.item_models import (
    CheckerTableModel,
    LogFilterProxy,
    LogTableModel,
    TransitionTableModel,
)
from console.ui.resync_graph import ResyncGraph
from console.ui.session import ClusterSession
from console.ui.timeline_strip import TimelineStrip
from console.ui.vm_panel import VmPanel


def _table(model: object) -> QTableView:
    view = QTableView()
    view.setModel(model)  # type: ignore[arg-type]
    view.setAlternatingRowColors(True)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.verticalHeader().hide()
    view.verticalHeader().setDefaultSectionSize(22)
    header = view.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setStretchLastSection(True)
    # The last column (message, detail) takes the rest and is elided (its tooltip has the
    # whole text); a panel narrower than the other columns scrolls instead of cutting them.
    last = max(0, model.columnCount() - 1)  # type: ignore[attr-defined]
    header.setSectionResizeMode(last, QHeaderView.ResizeMode.Stretch)
    view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
    view.setTextElideMode(Qt.TextElideMode.ElideRight)
    view.setWordWrap(False)
    return view


class ModuleDetail(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session: ClusterSession | None = None
        self.module = ""
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        self.title = QLabel("Select a module")
        self.title.setObjectName("detailTitle")
        self.subtitle = QLabel("")
        self.subtitle.setObjectName("muted")
        self.subtitle.setWordWrap(True)
        layout.addWidget(self.title)
        layout.addWidget(self.subtitle)
        self.tabs = QTabWidget()
        layout.addWidget(self.tabs, 1)

        # Timeline
        self.strip = TimelineStrip()
        self.transitions = TransitionTableModel(self)
        page = QWidget()
        v = QVBoxLayout(page)
        v.addWidget(self.strip)
        v.addWidget(_table(self.transitions), 1)
        self.tabs.addTab(page, "Timeline")

        # Logs
        self.logs = LogTableModel(self)
        self.log_filter = LogFilterProxy(self)
        self.log_filter.setSourceModel(self.logs)
        self.level = QComboBox()
        self.level.addItems(["DEBUG", "INFO", "WARNING", "ERROR"])
        self.level.setCurrentText("INFO")
        self.level.currentTextChanged.connect(self.log_filter.set_min_level)
        self.log_filter.set_min_level("INFO")
        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter text…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.log_filter.set_text)
        self.all_modules = QCheckBox("all modules")
        self.all_modules.toggled.connect(lambda _: self._apply_module_filter())
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Level ≥"))
        bar.addWidget(self.level)
        bar.addWidget(self.search, 1)
        bar.addWidget(self.all_modules)
        page = QWidget()
        v = QVBoxLayout(page)
        v.addLayout(bar)
        self.log_view = _table(self.log_filter)
        v.addWidget(self.log_view, 1)
        self.tabs.addTab(page, "Logs")

        # Checkers
        self.checkers = CheckerTableModel(self)
        self.tabs.addTab(_table(self.checkers), "Checkers")

        # Resync
        self.graph = ResyncGraph()
        self.tabs.addTab(self.graph, "Resync")

        # VM (vm modules only)
        self.vm = VmPanel()
        self._vm_tab = self.tabs.addTab(self.vm, "VM")
        self.tabs.setTabVisible(self._vm_tab, False)

    # ----- wiring -------------------------------------------------------------------------
    def set_session(self, session: ClusterSession | None) -> None:
        if session is self.session:
            return
        if self.session is not None:
            for signal, slot in self._connections():
                signal.disconnect(slot)
        self.session = session
        self.module = ""
        self.logs.set_records(session.logs.records() if session is not None else [])
        if session is not None:
            for signal, slot in self._connections():
                signal.connect(slot)
        self.refresh()

    def _connections(self) -> list:
        s = self.session
        assert s is not None
        return [
            (s.changed, self.refresh),
            (s.logs_added, self._logs_added),
            (s.resync_changed, self._resync_changed),
        ]

    def set_module(self, module: str) -> None:
        self.module = module
        self._apply_module_filter()
        self.refresh()
        self._refresh_transitions()
        self._refresh_graph()

    def _apply_module_filter(self) -> None:
        self.log_filter.set_module("" if self.all_modules.isChecked() else self.module)

    # ----- updates --------------------------------------------------------------------------
    def refresh(self) -> None:
        s = self.session
        view = s.model.module(self.module) if s is not None and self.module else None
        if view is None:
            self.title.setText("Select a module")
            self.subtitle.setText("")
            self.checkers.set_checkers([])
            self.tabs.setTabVisible(self._vm_tab, False)
            return
        self.title.setText(f"{view.name}  ·  {s.name if s else ''}")
        parts = [f"{n}: {view.nodes[n].text}" for n in NODE_IDS]
        reason = next((view.nodes[n].reason for n in NODE_IDS if view.nodes[n].reason), "")
        planes = [
            f"{n} {line}" for n in NODE_IDS if (line := data_plane_line(view.nodes[n].data_plane))
        ]
        lines = ["   ".join(parts), reason, *planes]
        self.subtitle.setText("\n".join(line for line in lines if line))
        self.checkers.set_checkers([c for n in NODE_IDS for c in view.nodes[n].checkers])
        is_vm = view.kind == "vm"
        self.tabs.setTabVisible(self._vm_tab, is_vm)
        if is_vm:
            self.vm.show_facts(vm_facts(s.model, view.name))
        self.strip.set_down_since({n: s.model.node(n).down_since for n in NODE_IDS})

    def _logs_added(self, records: list[LogRecord], appended: bool) -> None:
        assert self.session is not None
        if appended:
            self.logs.append(records)
        else:
            self.logs.set_records(self.session.logs.records())
        if any(r.module == self.module and r.is_transition for r in records):
            self._refresh_transitions()

    def _refresh_transitions(self) -> None:
        records = self.session.logs.transitions(self.module) if self.session else []
        self.transitions.set_records(records)
        self.strip.set_transitions(records)

    def _resync_changed(self, modules: set[str]) -> None:
        if self.module in modules:
            self._refresh_graph()

    def _refresh_graph(self) -> None:
        s = self.session
        if s is None or not self.module:
            self.graph.set_series([], False)
            return
        # The node resynchronizing now, else the one with the latest series.
        best = max(
            NODE_IDS,
            key=lambda n: (s.resync.active(self.module, n), len(s.resync.series(self.module, n))),
        )
        self.graph.set_series(
            s.resync.series(self.module, best), s.resync.active(self.module, best), best,
            s.resync.source(self.module, best), s.resync.joined_late(self.module, best),
        )  # fmt: skip
