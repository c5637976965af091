"""The compact view of a cluster's modules: a sortable, filterable table (one row per
module, a state light per node) for clusters with dozens of modules."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QObject,
    QSortFilterProxyModel,
    Qt,
)

from console.model.cluster import NODE_IDS
from console.model.views import ModuleView
from console.ui.table_base import Index, RowsTableModel
from console.ui.theme import light_icon

SORT_ROLE = Qt.ItemDataRole.UserRole + 2
_RANK = {"red": 0, "orange": 1, "grey": 2, "green": 3}  # worst first when sorted ascending


class ModuleTableModel(RowsTableModel[ModuleView]):
    HEADERS = ("Module", "Kind", *NODE_IDS, "Runs on", "Virtual IP", "Badges")

    def set_views(self, views: list[ModuleView]) -> None:
        if [v.name for v in views] == [v.name for v in self._rows]:
            self._rows = list(views)
            if views:  # same rows: repaint them, keep the selection and sort
                last = self.index(len(views) - 1, len(self.HEADERS) - 1)
                self.dataChanged.emit(self.index(0, 0), last)
            return
        self._reset(list(views))

    def module_at(self, row: int) -> str:
        return self._rows[row].name

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        v, col = self._rows[index.row()], index.column()
        node = v.nodes[NODE_IDS[col - 2]] if col in (2, 3) else None
        if role == Qt.ItemDataRole.DisplayRole:
            if node is not None:
                return node.text
            badges = sorted(
                {b.text for n in v.nodes.values() for b in n.badges if b.text != "up to date"}
            )
            primary = v.primary or ("both!" if v.two_primaries else "—")
            return (v.name, v.kind, "", "", primary, v.vip or "—", ", ".join(badges))[col]
        if role == Qt.ItemDataRole.DecorationRole and node is not None:
            return light_icon(node.colour, 12)
        if role == Qt.ItemDataRole.ToolTipRole:  # the whole text of an elided cell
            if node is not None:
                return f"{node.text}: {node.reason}" if node.reason else node.text
            return self.data(index, Qt.ItemDataRole.DisplayRole)
        if role == SORT_ROLE:
            if node is not None:
                return _RANK[node.colour.value]
            if col == 0:
                return v.name
            return str(self.data(index, Qt.ItemDataRole.DisplayRole))
        return None


def make_proxy(model: ModuleTableModel, parent: QObject | None = None) -> QSortFilterProxyModel:
    """Sort by state colour (worst first) or text; filter on any column's text."""
    proxy = QSortFilterProxyModel(parent)
    proxy.setSourceModel(model)
    proxy.setSortRole(SORT_ROLE)
    proxy.setFilterKeyColumn(-1)
    proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
    return proxy
