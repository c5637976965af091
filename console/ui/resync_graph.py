"""The resync progress graph (pyqtgraph): percent done and throughput over time, with
the ETA, for one module on the node that resynchronizes."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from console.model.history import ResyncPoint
from console.model.resync_summary import summary
from console.ui.theme import BACKGROUND, MUTED

PERCENT_PEN = "#4f9bea"
RATE_PEN = "#e0a030"
MIB = 1 << 20
# Before any resync: a minute of time and 0..10 MiB/s, not pyqtgraph's 0..1 of nothing.
EMPTY_SECONDS = 60.0
EMPTY_MIBPS = 10.0


class ResyncGraph(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.summary = QLabel("No resynchronization yet.")
        self.summary.setObjectName("muted")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)

        self.plot = pg.PlotWidget(background=BACKGROUND)
        item = self.plot.getPlotItem()
        item.showGrid(x=True, y=True, alpha=0.15)
        # Fixed units, no SI prefixes: pyqtgraph would turn B/s into "MB/s" beside the
        # summary's MiB/s, and an hour into "ks".
        for side, text, units, colour in (
            ("left", "done", "%", PERCENT_PEN),
            ("bottom", "time since start", "s", MUTED),
        ):
            item.getAxis(side).enableAutoSIPrefix(False)
            item.setLabel(side, text, units=units, color=colour)
        item.setYRange(0, 100, padding=0.02)
        item.setMouseEnabled(x=False, y=False)
        item.hideButtons()
        self.percent_curve = item.plot(pen=pg.mkPen(PERCENT_PEN, width=2.5), antialias=True)
        # Throughput on its own right-hand axis, sharing the time axis.
        self.rate_view = pg.ViewBox()
        item.showAxis("right")
        item.scene().addItem(self.rate_view)
        right = item.getAxis("right")
        right.linkToView(self.rate_view)
        right.enableAutoSIPrefix(False)
        right.setLabel("throughput", units="MiB/s", color=RATE_PEN)
        self.rate_view.setXLink(item)
        self.rate_view.setMouseEnabled(x=False, y=False)
        self.rate_curve = pg.PlotCurveItem(
            pen=pg.mkPen(RATE_PEN, width=1.5, style=Qt.PenStyle.DashLine), antialias=True
        )
        self.rate_view.addItem(self.rate_curve)
        item.vb.sigResized.connect(self._sync_views)
        layout.addWidget(self.plot, 1)
        self._points: list[ResyncPoint] = []
        self.set_series([], False)

    def _sync_views(self) -> None:
        self.rate_view.setGeometry(self.plot.getPlotItem().vb.sceneBoundingRect())
        self.rate_view.linkedViewChanged(self.plot.getPlotItem().vb, self.rate_view.XAxis)

    def set_series(
        self,
        points: list[ResyncPoint],
        active: bool,
        node_id: str = "",
        source: str = "",
        joined_late: bool = False,
    ) -> None:
        """``node_id``: the node being resynchronized; ``source``: the one it copies from;
        ``joined_late``: the series began with the resync already under way."""
        self._points = list(points)
        self.summary.setText(summary(points, active, node_id, source, joined_late))
        item = self.plot.getPlotItem()
        if not points:
            self.percent_curve.setData([], [])
            self.rate_curve.setData([], [])
            item.setXRange(0, EMPTY_SECONDS, padding=0)
            self.rate_view.setYRange(0, EMPTY_MIBPS, padding=0)
            return
        t0 = points[0].t
        xs = [p.t - t0 for p in points]
        with_pct = [
            (x, p.percent) for x, p in zip(xs, points, strict=True) if p.percent is not None
        ]
        self.percent_curve.setData([x for x, _ in with_pct], [y for _, y in with_pct])
        # The end point carries no rate of its own: the curve stops at the last measure.
        rated = [(x, p.rate / MIB) for x, p in zip(xs, points, strict=True) if not p.end]
        self.rate_curve.setData([x for x, _ in rated], [y for _, y in rated])
        top = max((y for _, y in rated), default=0.0)
        self.rate_view.setYRange(0, max(top * 1.15, 1.0), padding=0)
        item.setXRange(0, max(xs[-1], 1.0), padding=0.02)

    def point_count(self) -> int:
        return len(self._points)

    def rate_data(self) -> tuple[list[float], list[float]]:
        """The plotted throughput curve (x seconds, y MiB/s)."""
        xs, ys = self.rate_curve.getData()
        return ([] if xs is None else list(xs)), ([] if ys is None else list(ys))

    def curve_data(self) -> tuple[list[float], list[float]]:
        """The plotted percent curve (x seconds, y percent)."""
        xs, ys = self.percent_curve.getData()
        return ([] if xs is None else list(xs)), ([] if ys is None else list(ys))
