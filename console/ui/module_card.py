"""A module's card: its name, kind and VIP, its state pill and badges on each node, a
vm module's guest (state, size, disks, last boot), and the progress/result of the last
command. Dragging it starts a migration."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QDrag, QMouseEvent
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QVBoxLayout,
    QWidget,
)

from console.model.cluster import NODE_IDS
from console.model.data_plane import data_plane_line
from console.model.operations import Operation, Phase
from console.model.views import ModuleView, NodeModuleView
from console.model.vm_facts import VmFacts
from console.ui.flow_layout import FlowLayout
from console.ui.mime import ModuleDrag, encode
from console.ui.theme import set_role

_PHASE_MARK = {Phase.SENDING: "⟳", Phase.RUNNING: "⟳", Phase.DONE: "✓", Phase.FAILED: "✗"}


def _label(name: str, text: str = "") -> QLabel:
    label = QLabel(text)
    label.setObjectName(name)
    return label


def _why(view: ModuleView) -> str:
    """One line saying why the module is as it is: the worst node's reason first."""
    rank = ("red", "orange", "grey", "green")
    # When all is well, the primary's reason ("replicating to a ready secondary") says most.
    worst_first = sorted(view.nodes.values(), key=lambda v: (rank.index(v.colour), not v.primary))
    for v in worst_first:
        if v.reason and v.label != "ERROR":
            rule = f" · rule {v.last_rule}" if v.last_rule else ""
            return f"{v.node_id}: {v.reason}{rule}"
    return ""


class _NodeRow:
    """One node's line on the card: tag and state pill, then the badges -- beside the pill
    when there is room, wrapped under it in a narrow column (never cut off)."""

    def __init__(self, parent: QVBoxLayout, node_id: str) -> None:
        self.tag = _label("nodeTag", node_id)
        self.pill = _label("statePill")
        self.pill.setAlignment(Qt.AlignmentFlag.AlignCenter)
        head = QWidget()
        head.setObjectName("badges")  # transparent, as the badges' background
        pair = QHBoxLayout(head)
        pair.setContentsMargins(0, 0, 0, 0)
        pair.setSpacing(10)
        pair.addWidget(self.tag)
        pair.addWidget(self.pill)
        self.badges = FlowLayout(spacing=6)  # head first, then the badges
        self.badges.addWidget(head)
        parent.addLayout(self.badges)
        self._shown: tuple = ()

    def show(self, v: NodeModuleView) -> None:
        key = (v.text, v.colour, v.badges, v.reason, v.last_rule, v.data_plane)
        if key == self._shown:
            return
        self._shown = key
        self.pill.setText(v.text)
        set_role(self.pill, "colour", v.colour.value)
        tip = [f"{v.node_id}: {v.text}"]
        if v.reason:
            tip.append(v.reason)
        if v.last_rule:
            tip.append(f"last rule: {v.last_rule}")
        if dp := data_plane_line(v.data_plane):
            tip.append(dp)
        self.pill.setToolTip("\n".join(tip))
        while self.badges.count() > 1:  # the head stays
            item = self.badges.takeAt(1)
            if item is not None and item.widget() is not None:
                item.widget().deleteLater()
        for b in v.badges:
            badge = _label("badge", b.text)
            set_role(badge, "colour", b.colour.value)
            badge.setToolTip(b.tooltip)
            self.badges.addWidget(badge)


class ModuleCard(QFrame):
    clicked = Signal(str)
    menu_requested = Signal(str, QPoint)  # module, global position

    def __init__(self, cluster: str, module: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cluster, self.module = cluster, module
        self.home = ""
        self.setObjectName("moduleCard")
        self.setCursor(Qt.CursorShape.OpenHandCursor)
        self._press: QPoint | None = None
        self.view: ModuleView | None = None

        # A colour stripe down the left edge: the module's worst state at a glance.
        self.stripe = QFrame()
        self.stripe.setObjectName("cardStripe")
        self.stripe.setFixedWidth(6)
        row = QHBoxLayout(self)
        row.setContentsMargins(6, 6, 12, 6)
        row.setSpacing(10)
        row.addWidget(self.stripe)
        outer = QVBoxLayout()
        outer.setContentsMargins(0, 4, 0, 4)
        outer.setSpacing(6)
        row.addLayout(outer, 1)
        top = FlowLayout(spacing=8)  # the VIP goes under the name when narrow
        self.name_label = _label("moduleName", module)
        self.kind_label = _label("moduleKind")
        self.vip_label = _label("vip")
        top.addWidget(self.name_label)
        top.addWidget(self.kind_label)
        top.addWidget(self.vip_label)
        outer.addLayout(top)

        self.rows = {n: _NodeRow(outer, n) for n in NODE_IDS}
        # A vm module's guest, as the node running it reports it (hidden for an app).
        self.vm_label = _label("vmFacts")
        self.vm_disks = _label("vmFacts")
        for label in (self.vm_label, self.vm_disks):
            label.setWordWrap(True)
            label.hide()
            outer.addWidget(label)
        self.reason_label = _label("reason")
        self.reason_label.setWordWrap(True)
        outer.addWidget(self.reason_label)

        self.op_label = _label("operation")
        self.op_label.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # busy: a move has no measurable progress
        self.progress.setTextVisible(False)
        outer.addWidget(self.op_label)
        outer.addWidget(self.progress)
        self.op_label.hide()
        self.progress.hide()

    # ----- display ------------------------------------------------------------------------
    def show_view(self, view: ModuleView) -> None:
        self.view = view
        self.kind_label.setText(view.kind or "?")
        self.kind_label.setVisible(bool(view.kind))
        self.vip_label.setText(view.vip_text())
        set_role(self.stripe, "colour", view.colour.value)
        for node_id, row in self.rows.items():
            row.show(view.nodes[node_id])
        self.reason_label.setText(_why(view))
        self.reason_label.setVisible(bool(self.reason_label.text()))

    def show_vm(self, facts: VmFacts | None) -> None:
        if facts is None:
            self.vm_label.hide()
            self.vm_disks.hide()
            return
        self.vm_label.setText(f"VM {facts.state_text} · {facts.size_text}")
        boot = f" · {facts.boot_text}" if facts.boot_text else ""
        self.vm_disks.setText(f"{facts.disks_label}{boot}")
        self.vm_label.setToolTip(f"domain {facts.domain}, as {facts.node_id} reports it")
        self.vm_disks.setToolTip("image file sizes\n" + "\n".join(
            f"{d.text}: {d.path}" for d in facts.disks))  # fmt: skip
        self.vm_label.show()
        self.vm_disks.show()

    def vm_text(self) -> str:
        """What the card says of the guest ("" for an app module; tests, accessibility)."""
        if self.vm_label.isHidden():
            return ""
        return f"{self.vm_label.text()}\n{self.vm_disks.text()}"

    def show_operation(self, op: Operation | None) -> None:
        if op is None:
            self.op_label.hide()
            self.progress.hide()
            return
        self.op_label.setText(f"{_PHASE_MARK[op.phase]} {op.title}: {op.message}")
        set_role(self.op_label, "phase", op.phase.value)
        self.op_label.show()
        self.progress.setVisible(op.active)

    def set_selected(self, selected: bool) -> None:
        set_role(self, "selected", "yes" if selected else "no")

    def state_text(self, node_id: str) -> str:
        """What the pill shows for ``node_id`` (tests, accessibility)."""
        return self.rows[node_id].pill.text()

    def badge_texts(self, node_id: str) -> list[str]:
        """The badges shown for ``node_id`` (tests, accessibility)."""
        badges = self.rows[node_id].badges
        items = (badges.itemAt(i).widget() for i in range(badges.count()))
        return [w.text() for w in items if isinstance(w, QLabel)]

    def pill_colour(self, node_id: str) -> str:
        return str(self.rows[node_id].pill.property("colour") or "")

    # ----- mouse: click selects, drag migrates, right click opens the command menu ------
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        if event.button() == Qt.MouseButton.LeftButton:
            self._press = event.position().toPoint()
            self.clicked.emit(self.module)
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._press is None or not event.buttons() & Qt.MouseButton.LeftButton:
            return
        moved = (event.position().toPoint() - self._press).manhattanLength()
        if moved < QApplication.startDragDistance():
            return
        self._press = None
        drag = QDrag(self)
        drag.setMimeData(encode(ModuleDrag(self.cluster, self.module, self.home)))
        drag.setPixmap(
            self.grab().scaledToWidth(
                min(self.width(), 320), Qt.TransformationMode.SmoothTransformation
            )
        )
        drag.setHotSpot(QPoint(20, 20))
        drag.exec(Qt.DropAction.MoveAction)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._press = None
        super().mouseReleaseEvent(event)

    def contextMenuEvent(self, event) -> None:  # noqa: N802, ANN001
        self.clicked.emit(self.module)
        self.menu_requested.emit(self.module, event.globalPos())
