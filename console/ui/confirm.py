"""Confirmation dialogs that never block: the box is opened window-modal and the answer
arrives through a callback (no nested event loop inside a drop or an asyncio task)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QLabel, QMessageBox, QWidget


class Confirmer(QObject):
    asked = Signal(object)  # the QMessageBox just opened (tests and automation)

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self._parent = parent
        self.current: QMessageBox | None = None

    def ask(
        self,
        title: str,
        text: str,
        on_yes: Callable[[], None],
        *,
        yes_text: str = "Continue",
        danger: bool = False,
        then: tuple[str, str] | None = None,
    ) -> QMessageBox:
        """Ask; call ``on_yes`` if confirmed. ``then`` (title, text) asks a second time
        first (for commands that can lose data)."""
        if self.current is not None:  # one question at a time
            self.current.reject()
        icon = QMessageBox.Icon.Warning if danger else QMessageBox.Icon.Question
        # The headline is the dialog's first line, not only its window title: many window
        # managers (and dialogs sheeted onto the window) show no title bar text.
        box = QMessageBox(icon, title, title, QMessageBox.StandardButton.NoButton, self._parent)
        box.setObjectName("confirmBox")
        box.setInformativeText(text)
        informative = box.findChild(QLabel, "qt_msgbox_informativelabel")
        if informative is not None:  # agent texts inside: never read as rich text
            informative.setTextFormat(Qt.TextFormat.PlainText)
        yes = box.addButton(yes_text, QMessageBox.ButtonRole.AcceptRole)
        no = box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(no if danger else yes)
        box.setEscapeButton(no)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.setTextFormat(Qt.TextFormat.PlainText)

        def finished(_result: int) -> None:
            if self.current is box:
                self.current = None
            confirmed = box.clickedButton() is yes
            box.deleteLater()
            if not confirmed:
                return
            if then is not None:
                self.ask(then[0], then[1], on_yes, yes_text=yes_text, danger=True)
            else:
                on_yes()

        box.finished.connect(finished)
        self.current = box
        box.open()
        self.asked.emit(box)
        return box

    def shown_text(self) -> str:
        """Every line the open question shows inside the dialog (tests, automation)."""
        box = self.current
        if box is None:
            raise RuntimeError("no question is open")
        return "\n".join(lb.text() for lb in box.findChildren(QLabel) if lb.text())

    def answer(self, yes: bool) -> None:
        """Answer the open question as the operator would (keyboard-free automation)."""
        box = self.current
        if box is None:
            raise RuntimeError("no question is open")
        buttons = box.buttons()
        accept = [b for b in buttons if box.buttonRole(b) == QMessageBox.ButtonRole.AcceptRole]
        (accept[0] if yes else box.button(QMessageBox.StandardButton.Cancel)).click()
