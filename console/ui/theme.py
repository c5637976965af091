"""Colours, fonts, the style sheet and the little status-light icons."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QApplication, QWidget

from console.model.states import Colour
from console.resources import resources_dir

RESOURCES = resources_dir()
STYLE_SHEET = RESOURCES / "style" / "console.qss"
APP_ICON = RESOURCES / "icons" / "mirrorpair.svg"

# Saturated enough to read from across a room, dark enough for white text on top.
COLOURS = {
    Colour.GREEN: "#1f9d55",
    Colour.ORANGE: "#e07b00",
    Colour.RED: "#d93636",
    Colour.GREY: "#5f6b78",
}
TEXT = "#e8ecf1"
MUTED = "#9aa7b4"
BACKGROUND = "#1b2027"


def colour_hex(colour: Colour | str) -> str:
    return COLOURS[Colour(colour)]


def light_icon(colour: Colour | str, size: int = 16) -> QIcon:
    """A round status light (tabs, tray, headers)."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    p = QPainter(pixmap)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(QColor(0, 0, 0, 90))
    p.setBrush(QColor(colour_hex(colour)))
    p.drawEllipse(QRectF(1.5, 1.5, size - 3, size - 3))
    p.end()
    return QIcon(pixmap)


def app_icon() -> QIcon:
    return QIcon(str(APP_ICON)) if APP_ICON.exists() else light_icon(Colour.GREEN, 64)


def apply_theme(app: QApplication) -> None:
    """The console's dark theme (a security desk is often dimly lit)."""
    font = QFont("DejaVu Sans", 10)
    font.setStyleHint(QFont.StyleHint.SansSerif)
    app.setFont(font)
    app.setStyle("Fusion")
    app.setStyleSheet(style_sheet())


def style_sheet() -> str:
    """The console's style sheet, its icon paths made absolute ("" when missing)."""
    if not STYLE_SHEET.exists():
        return ""
    icons = (RESOURCES / "icons").as_posix()
    return STYLE_SHEET.read_text(encoding="utf-8").replace("@ICONS@", icons)


def set_role(widget: QWidget, name: str, value: str) -> None:
    """Set a dynamic property the style sheet selects on, and re-apply the style."""
    if widget.property(name) == value:
        return
    widget.setProperty(name, value)
    style = widget.style()
    style.unpolish(widget)
    style.polish(widget)
