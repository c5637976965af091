"""The resync progress graph (pyqtgraph): percent done and throughput over time, with
the ETA, for one module on the node that resynchronizes."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from console.model.history import ResyncPoint
from console.model.states import format_bytes, format_duration
from console.ui.theme import BACKGROUND, MUTED

PERCENT_PEN = "#4f9bea"
RATE_PEN = "#e0a030"


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
        item.setLabel("left", "done", units="%", color=PERCENT_PEN)
        item.setLabel("bottom", "time since start", units="s", color=MUTED)
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
        right.setLabel("throughput", units="B/s", color=RATE_PEN)
        self.rate_view.setXLink(item)
        self.rate_view.setMouseEnabled(x=False, y=False)
        self.rate_curve = pg.PlotCurveItem(
            pen=pg.mkPen(RATE_PEN, width=1.5, style=Qt.PenStyle.DashLine), antialias=True
        )
        self.rate_view.addItem(self.rate_curve)
        item.vb.sigResized.connect(self._sync_views)
        layout.addWidget(self.plot, 1)
        self._points: list[ResyncPoint] = []

    def _sync_views(self) -> None:
        self.rate_view.setGeometry(self.plot.getPlotItem().vb.sceneBoundingRect())
        self.rate_view.linkedViewChanged(self.plot.getPlotItem().vb, self.rate_view.XAxis)

    def set_series(
        self, points: list[ResyncPoint], active: bool, node_id: str = "", source: str = ""
    ) -> None:
        """``node_id``: the node being resynchronized; ``source``: the one it copies from."""
        self._points = list(points)
        if not points:
            self.percent_curve.setData([], [])
            self.rate_curve.setData([], [])
            self.summary.setText("No resynchronization yet.")
            return
        t0 = points[0].t
        xs = [p.t - t0 for p in points]
        with_pct = [
            (x, p.percent) for x, p in zip(xs, points, strict=True) if p.percent is not None
        ]
        self.percent_curve.setData([x for x, _ in with_pct], [y for _, y in with_pct])
        self.rate_curve.setData(xs, [p.rate for p in points])
        top = max((p.rate for p in points), default=0.0)
        self.rate_view.setYRange(0, max(top * 1.15, 1.0), padding=0)
        last = points[-1]
        pct = f"{last.percent:.1f}%" if last.percent is not None else "size unknown"
        origin = f" from {source}" if node_id and source else ""
        if active:
            eta = format_duration(last.eta_s) if last.eta_s > 0 else "estimating…"
            self.summary.setText(
                f"Resynchronizing{' ' + node_id if node_id else ''}{origin}: {pct} — "
                f"{format_bytes(last.bytes_done)} of "
                f"{format_bytes(last.bytes_total)} at {format_bytes(last.rate)}/s — ETA {eta}"
            )
        else:
            self.summary.setText(
                f"Last resynchronization{' of ' + node_id if node_id else ''}{origin}: "
                f"reached {pct} "
                f"({format_bytes(last.bytes_done)}) in "
                f"{format_duration(last.t - t0)}."
            )

    def point_count(self) -> int:
        return len(self._points)

    def curve_data(self) -> tuple[list[float], list[float]]:
        """The plotted percent curve (x seconds, y percent)."""
        xs, ys = self.percent_curve.getData()
        return ([] if xs is None else list(xs)), ([] if ys is None else list(ys))
