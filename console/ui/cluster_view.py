"""A cluster's tab: a notice bar and two server columns holding the module cards.
Each card sits in the column of the node where its module is primary."""

from __future__ import annotations

import time

from PySide6.QtCore import QModelIndex, QPoint, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from console.model.cluster import NODE_IDS
from console.model.migration import MigrationPlan, plan_migration
from console.model.operations import Operation
from console.model.vm_facts import vm_facts
from console.ui.flows import CommandFlows
from console.ui.mime import ModuleDrag
from console.ui.module_card import ModuleCard
from console.ui.module_table import ModuleTableModel, make_proxy
from console.ui.notice import NoticeBar
from console.ui.server_column import ServerColumn
from console.ui.session import ClusterSession


class ClusterView(QWidget):
    module_selected = Signal(str)
    hover_message = Signal(str)  # what a drop here would do (status bar)

    def __init__(
        self, session: ClusterSession, flows: CommandFlows, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.session, self.flows = session, flows
        self.selected = ""
        self.cards: dict[str, ModuleCard] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 12, 14, 14)
        layout.setSpacing(10)
        self.notice = NoticeBar()
        layout.addWidget(self.notice)
        bar = QHBoxLayout()
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter modules (name, state, VIP)…")
        self.filter.setClearButtonEnabled(True)
        self.filter.setMinimumWidth(320)
        self.filter.textChanged.connect(self._filter_changed)
        self.table_toggle = QPushButton("Table view")
        self.table_toggle.setCheckable(True)
        self.table_toggle.toggled.connect(self._show_table)
        bar.addWidget(self.filter)
        bar.addStretch(1)
        bar.addWidget(self.table_toggle)
        layout.addLayout(bar)

        self.pages = QStackedWidget()
        cards_page = QWidget()
        row = QHBoxLayout(cards_page)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(14)
        self.columns = {
            n: ServerColumn(n, self._check_drop, self._drop, self.hover_message.emit)
            for n in NODE_IDS
        }
        for column in self.columns.values():
            row.addWidget(column, 1)
        self.pages.addWidget(cards_page)
        self.table_model = ModuleTableModel(self)
        self.table_proxy = make_proxy(self.table_model, self)
        self.table = QTableView()
        self.table.setModel(self.table_proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.clicked.connect(self._table_clicked)
        self.pages.addWidget(self.table)
        layout.addWidget(self.pages, 1)
        flows.refused.connect(self._refused)
        session.changed.connect(self.refresh)
        session.operation_changed.connect(self._operation_changed)
        self.refresh()

    def refresh(self) -> None:
        model = self.session.model
        for node_id, column in self.columns.items():
            column.show_node(model.node(node_id))
        views = model.modules()
        order: dict[str, int] = dict.fromkeys(NODE_IDS, 0)
        for view in views:
            card = self.cards.get(view.name)
            if card is None:
                card = ModuleCard(self.session.name, view.name)
                card.clicked.connect(self.select)
                card.menu_requested.connect(self._menu)
                self.cards[view.name] = card
                card.set_selected(False)
                card.show_operation(self.session.ops.latest(view.name, time.time()))
            card.show_view(view)
            card.show_vm(vm_facts(model, view.name) if view.kind == "vm" else None)
            self.columns[view.home].place(card, order[view.home])
            order[view.home] += 1
        self.table_model.set_views(views)
        self._filter_changed(self.filter.text())
        gone = set(self.cards) - {v.name for v in views}
        for name in gone:  # removed from the configuration of both nodes
            card = self.cards.pop(name)
            card.setParent(None)  # out of its column's layout now, deleted later
            card.deleteLater()
        if self.selected in gone:
            self.selected = ""
        for column in self.columns.values():
            column.update_empty()
        if not self.selected and views:
            self.select(views[0].name)

    def _filter_changed(self, text: str) -> None:
        needle = text.strip().lower()
        self.table_proxy.setFilterFixedString(needle)
        for name, card in self.cards.items():
            view = card.view
            hay = name
            if view is not None:
                hay += " " + view.vip + " " + " ".join(n.text for n in view.nodes.values())
            card.setVisible(not needle or needle in hay.lower())

    def _show_table(self, table: bool) -> None:
        self.pages.setCurrentIndex(1 if table else 0)
        self.table.resizeColumnsToContents()

    def _table_clicked(self, index: QModelIndex) -> None:
        source = self.table_proxy.mapToSource(index)
        self.select(self.table_model.module_at(source.row()))

    def select(self, module: str) -> None:
        if module == self.selected:
            self.module_selected.emit(module)
            return
        self.selected = module
        for name, card in self.cards.items():
            card.set_selected(name == module)
        self.module_selected.emit(module)

    def card(self, module: str) -> ModuleCard:
        return self.cards[module]

    def column_of(self, module: str) -> str:
        return self.cards[module].home

    def _operation_changed(self, op: Operation) -> None:
        card = self.cards.get(op.module)
        if card is not None:
            card.show_operation(self.session.ops.latest(op.module, time.time()))

    def fade_operations(self) -> None:
        """Hide results shown long enough (called every second by the window)."""
        now = time.time()
        for name, card in self.cards.items():
            card.show_operation(self.session.ops.latest(name, now))

    # ----- drag and drop -------------------------------------------------------------------
    def _check_drop(self, drag: ModuleDrag, node_id: str) -> MigrationPlan | None:
        if drag.cluster != self.session.name:
            return MigrationPlan(
                drag.module,
                node_id,
                False,
                f"{drag.module} belongs to cluster {drag.cluster}, not {self.session.name}",
            )
        if drag.source == node_id:
            return None  # dropped back where it was: nothing to do, nothing to say
        return plan_migration(
            self.session.model, drag.module, node_id, busy=self.session.ops.busy(drag.module)
        )

    def _drop(self, drag: ModuleDrag, node_id: str) -> None:
        plan = self._check_drop(drag, node_id)
        if plan is None:
            return
        if drag.cluster != self.session.name:
            self._refused(plan.reason)
            return
        self.flows.request_migration(drag.module, node_id)

    def _refused(self, reason: str) -> None:
        self.notice.show_message(f"Refused: {reason}")

    def _menu(self, module: str, pos: QPoint) -> None:
        menu = self.flows.build_menu(module, self)
        menu.popup(pos)
