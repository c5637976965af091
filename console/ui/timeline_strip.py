"""A painted state timeline: one lane per node, coloured segments from the module's
transitions (the colour of each state entered) up to now."""

from __future__ import annotations

import time

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from console.model.cluster import NODE_IDS
from console.model.history import LogRecord
from console.model.states import format_duration, state_name
from console.ui.theme import MUTED, TEXT, colour_hex

LANE_H = 22
LEFT = 58


class TimelineStrip(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(2 * LANE_H + 34)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self._records: list[LogRecord] = []
        self.now: float | None = None  # None: the wall clock at each repaint
        self._down: dict[str, float] = {}

    def set_transitions(self, records: list[LogRecord]) -> None:
        self._records = sorted(records, key=lambda r: r.time)
        self.update()

    def set_down_since(self, down: dict[str, float]) -> None:
        """Nodes not answering since when: their lane shows ERROR from then on (what
        they did meanwhile is unknown)."""
        if down != self._down:
            self._down = dict(down)
            self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        small = QFont(self.font())
        small.setPointSizeF(max(7.0, small.pointSizeF() - 1.5))
        p.setFont(small)
        width = self.width() - LEFT - 8
        if not self._records or width <= 20:
            p.setPen(QColor(MUTED))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No state changes recorded yet.")
            return
        now = self.now if self.now is not None else time.time()
        start = self._records[0].time
        span = max(now - start, 1.0)

        def x_of(t: float) -> float:
            return LEFT + width * (t - start) / span

        for lane, node_id in enumerate(NODE_IDS):
            y = 6 + lane * (LANE_H + 6)
            p.setPen(QColor(MUTED))
            p.drawText(
                QRectF(0, y, LEFT - 8, LANE_H),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                node_id,
            )
            mine = [r for r in self._records if r.node_id == node_id]
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor("#2a3139"))
            p.drawRoundedRect(QRectF(LEFT, y, width, LANE_H), 4, 4)
            for i, r in enumerate(mine):
                end = mine[i + 1].time if i + 1 < len(mine) else now
                rect = QRectF(x_of(r.time), y, max(x_of(end) - x_of(r.time), 2.0), LANE_H)
                self._segment(p, rect, colour_hex(r.colour), state_name(r.new_state))
            down = self._down.get(node_id, 0.0)
            if down:
                left = max(x_of(down), LEFT)
                rect = QRectF(left, y, max(LEFT + width - left, 2.0), LANE_H)
                self._segment(p, rect, colour_hex("red"), "ERROR", hatched=True)
        y = 6 + 2 * (LANE_H + 6)
        p.setPen(QPen(QColor(MUTED)))
        p.drawText(
            QRectF(LEFT, y, width, 16),
            Qt.AlignmentFlag.AlignLeft,
            time.strftime("%H:%M:%S", time.localtime(start)),
        )
        p.setPen(QColor(TEXT))
        p.drawText(
            QRectF(LEFT, y, width, 16),
            Qt.AlignmentFlag.AlignRight,
            f"now  ({format_duration(span)} shown)",
        )

    @staticmethod
    def _segment(p: QPainter, rect: QRectF, colour: str, label: str, hatched: bool = False) -> None:
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(colour))
        p.drawRect(rect)
        if hatched:  # not a state the node reported: the console lost it
            p.setBrush(QBrush(QColor(0, 0, 0, 70), Qt.BrushStyle.BDiagPattern))
            p.drawRect(rect)
        if rect.width() > p.fontMetrics().horizontalAdvance(label) + 8:
            p.setPen(QColor("white"))
            p.drawText(rect, Qt.AlignmentFlag.AlignCenter, label)
