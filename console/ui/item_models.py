"""Qt item models over the console model: log entries (with a filter proxy), state
transitions (the timeline) and checkers."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import (
    QModelIndex,
    QObject,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QBrush, QColor

from console.model.history import LEVELS, LogRecord
from console.model.views import CheckerView
from console.ui.table_base import Index, RowsTableModel
from console.ui.theme import colour_hex

LEVEL_COLOURS = {"DEBUG": "#7f8c99", "INFO": "#c9d3dd", "WARNING": "#f0b44c", "ERROR": "#ff7b7b"}
RECORD_ROLE = Qt.ItemDataRole.UserRole + 1


def stamp(t: float) -> str:
    """Time of day for today's entries, with the date for older ones."""
    local = time.localtime(t)
    if time.strftime("%Y%m%d", local) == time.strftime("%Y%m%d"):
        return time.strftime("%H:%M:%S", local)
    return time.strftime("%Y-%m-%d %H:%M:%S", local)


class LogTableModel(RowsTableModel[LogRecord]):
    HEADERS = ("Time", "Node", "Module", "Level", "Message")

    def set_records(self, records: list[LogRecord]) -> None:
        self._reset(list(records))

    def append(self, records: list[LogRecord]) -> None:
        if not records:
            return
        first = len(self._rows)
        self.beginInsertRows(QModelIndex(), first, first + len(records) - 1)
        self._rows.extend(records)
        self.endInsertRows()

    def record(self, row: int) -> LogRecord:
        return self._rows[row]

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        r = self._rows[index.row()]
        if role == RECORD_ROLE:
            return r
        # The tooltip is the whole text: a message elided in its column can still be read.
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            if index.column() == 4:
                extra = f"  [{r.cause}{' by ' + r.who if r.who else ''}]" if r.cause else ""
                return r.message + extra
            return (stamp(r.time), r.node_id, r.module or "—", r.shown_level)[index.column()]
        if role == Qt.ItemDataRole.ForegroundRole and index.column() in (3, 4):
            return QBrush(QColor(LEVEL_COLOURS.get(r.shown_level, "#c9d3dd")))
        return None


class LogFilterProxy(QSortFilterProxyModel):
    """Filters by minimum level, module and a case-insensitive text."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._min_level = 0
        self._module = ""
        self._text = ""

    def set_min_level(self, level: str) -> None:
        self.beginFilterChange()
        self._min_level = LEVELS.get(level.upper(), 0)
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_module(self, module: str) -> None:
        self.beginFilterChange()
        self._module = module
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_text(self, text: str) -> None:
        self.beginFilterChange()
        self._text = text.strip().lower()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, row: int, parent: Index) -> bool:  # noqa: N802 (Qt API)
        model = self.sourceModel()
        assert isinstance(model, LogTableModel)
        r = model.record(row)
        if r.level_number < self._min_level:
            return False
        if self._module and r.module not in (self._module, ""):
            return False
        if self._text:
            hay = f"{r.message} {r.cause} {r.who} {r.node_id}".lower()
            return self._text in hay
        return True


class TransitionTableModel(RowsTableModel[LogRecord]):
    """One module's state transitions, newest first."""

    HEADERS = ("Time", "Node", "Transition", "Why")

    def set_records(self, records: list[LogRecord]) -> None:
        self._reset(sorted(records, key=lambda r: r.time, reverse=True))

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        r = self._rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            detail = r.message.split(": ", 1)[-1]
            cause = f"{r.cause} by {r.who}" if r.who else r.cause
            why = f"{cause}: {detail}" if cause else detail
            return (stamp(r.time), r.node_id, r.transition_text(), why)[index.column()]
        if role == Qt.ItemDataRole.ForegroundRole and index.column() == 2:
            return QBrush(QColor(colour_hex(r.colour)).lighter(130))
        return None


class CheckerTableModel(RowsTableModel[CheckerView]):
    HEADERS = ("Node", "Checker", "Kind", "State", "Failures", "On failure", "Detail")

    def set_checkers(self, checkers: list[CheckerView]) -> None:
        if checkers == self._rows:
            return
        self._reset(list(checkers))

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        c = self._rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return (
                c.node_id,
                c.name,
                c.kind,
                "OK" if c.ok else "FAILING",
                str(c.consecutive_failures),
                c.action,
                c.detail,
            )[index.column()]
        if role == Qt.ItemDataRole.ForegroundRole and index.column() == 3:
            return QBrush(QColor("#7ee2a8" if c.ok else "#ff7b7b"))
        return None
