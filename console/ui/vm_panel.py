"""The detail panel's VM tab: what the node running a vm module's guest reports of it
(domain, state, vCPUs, memory, last boot) and its disks, one row each."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QHeaderView,
    QLabel,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from console.model.vm_facts import VmDiskFacts, VmFacts, format_size
from console.ui.table_base import Index, RowsTableModel


class VmDiskTableModel(RowsTableModel[VmDiskFacts]):
    HEADERS = ("Disk", "Image size", "Image")

    def set_disks(self, disks: tuple[VmDiskFacts, ...]) -> None:
        if list(disks) != self._rows:
            self._reset(list(disks))

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        d = self._rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            size = format_size(d.size_bytes) if d.size_bytes else "unknown"
            return (d.target, size, d.path)[index.column()]
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() == 1:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class VmPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.fields = {k: QLabel() for k in ("Domain", "Guest", "Size", "Last boot")}
        for name, label in self.fields.items():
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(f"{name}:", label)
        layout.addLayout(form)
        self.disks = VmDiskTableModel(self)
        table = QTableView()
        table.setModel(self.disks)
        table.verticalHeader().hide()
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        header = table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # an image's name is at its end
        table.setWordWrap(False)  # else Qt cuts a long path at its end
        layout.addWidget(table, 1)

    def show_facts(self, facts: VmFacts | None) -> None:
        if facts is None:
            for label in self.fields.values():
                label.setText("")
            self.fields["Guest"].setText("no node that answers reports this VM")
            self.disks.set_disks(())
            return
        self.fields["Domain"].setText(facts.domain or "(definition not read yet)")
        self.fields["Guest"].setText(facts.state_text)
        self.fields["Size"].setText(facts.size_text)
        self.fields["Last boot"].setText(facts.boot_time or "not measured yet")
        self.disks.set_disks(facts.disks)
