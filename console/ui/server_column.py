"""A server column: the node's header (name, address, heartbeat links, reachability)
and the cards of the modules it serves. Dropping a card on it asks for a migration."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QDragEnterEvent, QDragLeaveEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from console.model.links import LinkChip, link_chip
from console.model.migration import MigrationPlan
from console.model.node_header import reach_text
from console.model.views import NodeView
from console.ui.flow_layout import FlowLayout
from console.ui.mime import ModuleDrag, decode
from console.ui.module_card import ModuleCard
from console.ui.theme import light_icon, set_role

DropCheck = Callable[[ModuleDrag, str], MigrationPlan | None]
DropAction = Callable[[ModuleDrag, str], None]


def _label(name: str, text: str = "") -> QLabel:
    label = QLabel(text)
    label.setObjectName(name)
    return label


def _show_chip(label: QLabel, chip: LinkChip) -> None:
    label.setText(chip.text)
    set_role(label, "colour", chip.colour.value)
    label.setToolTip(chip.tooltip)


class _CardScroll(QScrollArea):
    """Scrolls the cards vertically only, and asks for the width the widest card needs:
    the window then squeezes the detail dock (or stops shrinking), never the cards."""

    def __init__(self) -> None:
        super().__init__()
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        body = self.widget()
        width = body.minimumSizeHint().width() if body is not None else 0
        width += self.verticalScrollBar().sizeHint().width() + 2 * self.frameWidth()
        return QSize(width, super().minimumSizeHint().height())


class ServerColumn(QFrame):
    def __init__(
        self,
        node_id: str,
        check_drop: DropCheck,
        on_drop: DropAction,
        on_hover: Callable[[str], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.node_id = node_id
        self._check_drop, self._on_drop, self._on_hover = check_drop, on_drop, on_hover
        self.setObjectName("serverColumn")
        self.setAcceptDrops(True)

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        header = QFrame()
        header.setObjectName("columnHeader")
        h = QVBoxLayout(header)
        h.setContentsMargins(16, 12, 16, 12)
        h.setSpacing(6)
        top = QHBoxLayout()
        self.light = QLabel()
        self.name = _label("nodeName", node_id)
        self.reach = _label("muted")
        top.addWidget(self.light)
        top.addWidget(self.name)
        top.addStretch(1)
        top.addWidget(self.reach)
        h.addLayout(top)
        self.address = _label("nodeAddress")
        h.addWidget(self.address)
        self.links = FlowLayout(spacing=6)  # chips wrap in a narrow column, never widen it
        h.addLayout(self.links)
        self.error = _label("nodeError")
        self.error.setWordWrap(True)
        self.error.hide()
        h.addWidget(self.error)
        self.config_warning = _label("nodeError")  # the two nodes run different versions
        self.config_warning.setWordWrap(True)
        self.config_warning.hide()
        h.addWidget(self.config_warning)
        self.version_warning = _label("nodeError")  # the two agents run different builds
        self.version_warning.setWordWrap(True)
        self.version_warning.hide()
        h.addWidget(self.version_warning)
        outer.addWidget(header)

        body = QWidget()
        self.cards_layout = QVBoxLayout(body)
        self.cards_layout.setContentsMargins(12, 12, 12, 12)
        self.cards_layout.setSpacing(10)
        self.empty = _label("emptyColumn", "No module runs here.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.cards_layout.addWidget(self.empty)
        self.cards_layout.addStretch(1)
        hint = _label("muted", f"Drag a module here to move it to {node_id}.")
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint.setWordWrap(True)
        self.cards_layout.addWidget(hint)
        self.scroll = _CardScroll()
        self.scroll.setWidget(body)
        outer.addWidget(self.scroll, 1)
        self._link_key: tuple = ()
        self._link_chips: list[QLabel] = []

    # ----- header -------------------------------------------------------------------------
    def show_node(self, view: NodeView) -> None:
        self.light.setPixmap(light_icon(view.colour, 14).pixmap(14, 14))
        self.address.setText(
            f"{view.address}"
            + (f"  ·  agent {view.version}" if view.version else "")
            + (f" (protocol {view.protocol})" if view.version and view.protocol else "")
            + (f"  ·  config v{view.config_version}" if view.config_version else "")
        )
        self.config_warning.setVisible(bool(view.config_warning) and view.reachable)
        self.config_warning.setText(f"⚠ configuration mismatch: {view.config_warning}")
        self.version_warning.setVisible(bool(view.version_warning) and view.reachable)
        what = "protocol mismatch" if view.peer_incompatible else "version mismatch"
        self.version_warning.setText(f"⚠ {what}: {view.version_warning}")
        self.reach.setText(reach_text(view))
        self.error.setVisible(not view.reachable and not view.connecting)
        self.error.setText(f"⚠ {view.error}" if view.error else "")
        chips = [link_chip(lk) for lk in view.links]
        key = (tuple(lk.name for lk in view.links), view.reachable, view.witness)
        if key == self._link_key:  # the same links: their chips change in place
            for label, c in zip(self._link_chips, chips, strict=True):
                _show_chip(label, c)
            return
        self._link_key = key
        while self.links.count():
            item = self.links.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.links.addWidget(_label("muted", "heartbeat"))
        if not view.links:
            self.links.addWidget(_label("muted", "unknown"))
        self._link_chips = [_label("linkChip") for _ in chips]
        for label, c in zip(self._link_chips, chips, strict=True):
            _show_chip(label, c)
            self.links.addWidget(label)
        if view.witness:
            chip = _label("linkChip", f"witness {view.witness}")
            set_role(chip, "colour", "green" if view.witness == "reachable" else "red")
            self.links.addWidget(chip)

    # ----- cards ---------------------------------------------------------------------------
    def cards(self) -> list[ModuleCard]:
        out = []
        for i in range(self.cards_layout.count()):
            w = self.cards_layout.itemAt(i).widget()
            if isinstance(w, ModuleCard):
                out.append(w)
        return out

    def place(self, card: ModuleCard, index: int) -> None:
        """Put ``card`` at ``index`` among this column's cards (moving it if needed)."""
        card.home = self.node_id
        current = self.cards()
        if index < len(current) and current[index] is card:
            return
        if card in current:
            self.cards_layout.removeWidget(card)
        self.cards_layout.insertWidget(index + 1, card)  # +1: the "empty" label is first
        card.show()
        self.empty.setVisible(False)
        self.scroll.updateGeometry()  # its minimum width may have grown

    def update_empty(self) -> None:
        self.empty.setVisible(not self.cards())
        self.scroll.updateGeometry()  # the cards' content (and minimum width) changed

    # ----- drop target ------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt override)
        drag = decode(event.mimeData())
        if drag is None:
            event.ignore()
            return
        # Accept even a drop that cannot work: refusing here would give no reason.
        event.acceptProposedAction()
        plan = self._check_drop(drag, self.node_id)
        ok = plan is None or plan.ok
        set_role(self, "drop", "ok" if ok else "refused")
        if plan is not None:
            self._on_hover(
                plan.reason if not plan.ok else f"Drop to move {drag.module} to {self.node_id}"
            )

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:  # noqa: N802
        if decode(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:  # noqa: N802
        set_role(self, "drop", "")
        self._on_hover("")

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        set_role(self, "drop", "")
        self._on_hover("")
        drag = decode(event.mimeData())
        if drag is None:
            event.ignore()
            return
        event.acceptProposedAction()
        # Out of the drop handler: the drag's own event loop is still unwinding here.
        QTimer.singleShot(0, lambda: self._on_drop(drag, self.node_id))
