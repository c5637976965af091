"""The setup wizard (issue 12, point 5): thin QWizard pages over ``SetupFlow``.

The flow decides the page order and what each page refuses; the pages only show its
answers and problems and pass the operator's input on. Steps that ask the servers run
as asyncio tasks on the qasync loop: while one runs, Next and Finish are disabled and
the page says what it is waiting for. Finish is the apply: nothing reaches a server's
configuration before it, and a refusal keeps the wizard open on that page.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget, QWizard, QWizardPage

from console.setup.backend import SetupBackend, SetupError
from console.setup.flow import NEW_PAGES, Page, SetupFlow
from console.setup.plan import Problem

log = logging.getLogger(__name__)
BackendFactory = Callable[[], SetupBackend]


@runtime_checkable
class RunningConfigSource(Protocol):
    """A backend that can also read the configuration a cluster runs (GetConfig, its
    secret masked): what "Edit configuration…" starts from."""

    async def running_config(self) -> str: ...


class FlowPage(QWizardPage):
    """A page over one of the flow's pages: its problems in the ``error`` label (warnings
    in ``warning``), Next through the flow's ``validate`` (which may ask the servers)."""

    page_id: Page = Page.FIND
    title_text = ""
    subtitle_text = ""

    def __init__(self, wizard: SetupWizard) -> None:
        super().__init__()
        self.wiz = wizard
        self.setObjectName(f"page_{self.page_id.value}")
        self.setTitle(self.title_text)
        self.setSubTitle(self.subtitle_text)
        self.body = QVBoxLayout(self)
        self.busy_label = QLabel("")
        self.busy_label.setObjectName("busy")
        self.error = QLabel("")
        self.error.setObjectName("error")
        self.warning = QLabel("")
        self.warning.setObjectName("warning")
        for label in (self.error, self.warning):
            label.setWordWrap(True)
        self._validated = False

    @property
    def flow(self) -> SetupFlow:
        return self.wiz.flow

    def finish_layout(self, stretch: bool = False) -> None:
        """The problem labels under the page's own widgets (then the free space, on a
        page whose widgets do not fill it)."""
        self.body.addWidget(self.busy_label)
        self.body.addWidget(self.error)
        self.body.addWidget(self.warning)
        if stretch:
            self.body.addStretch(1)

    # ----- what subclasses fill in --------------------------------------------------------
    def refresh(self) -> None:
        """Show the flow's answers (after a step, or when the page is shown)."""

    def start(self) -> None:
        """The page was entered going forward (the first look: discover, load VMs)."""

    async def on_next(self) -> list[Problem]:
        return await self.flow.validate(self.wiz.backend, self.page_id)

    # ----- QWizardPage --------------------------------------------------------------------
    def initializePage(self) -> None:  # noqa: N802 (Qt override)
        self.flow.enter(self.page_id)
        self._validated = False
        self.error.setText("")  # from an earlier visit: checked again on Next
        self.refresh()
        self.show_problems(self.flow.check(self.page_id), only_warnings=True)
        self.start()

    def isComplete(self) -> bool:  # noqa: N802 (Qt override)
        return not self.wiz.busy

    def validatePage(self) -> bool:  # noqa: N802 (Qt override)
        if self.wiz.busy:
            return False
        if self._validated:
            self._validated = False
            return True
        self.wiz.run(self.on_next(), self._checked, "Checking with the servers…")
        return False

    def _checked(self, problems: list[Problem]) -> None:
        self.refresh()
        self.show_problems(problems)
        if not any(not p.warning for p in problems):
            self._validated = True
            # Pressed again now that the servers agreed; validatePage lets it through.
            if self.wiz.nextId() == -1:
                self.wiz.accept()
            else:
                self.wiz.next()

    def show_problems(self, problems: list[Problem], only_warnings: bool = False) -> None:
        errors = [p for p in problems if not p.warning]
        warnings = [p for p in problems if p.warning]
        if not only_warnings:
            self.error.setText("\n".join(f"✖ {p}" for p in errors))
        self.warning.setText("\n".join(f"⚠ {p}" for p in warnings))

    def recheck(self) -> None:
        """After an edit: the page's problems as they stand (no server asked)."""
        self.show_problems(self.flow.check(self.page_id))


class SetupWizard(QWizard):
    """``backend_factory`` makes the backend the wizard talks to the servers through;
    ``flow`` an edit of a running cluster (``SetupWizard.edit``) or None for a new one."""

    applied = Signal(object)  # the SetupFlow, once both nodes run its configuration
    busy_changed = Signal(bool)

    def __init__(
        self,
        backend_factory: BackendFactory,
        flow: SetupFlow | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        from console.ui.setup_pages import page_classes  # the pages import this module

        self.backend = backend_factory()
        self.flow = flow or SetupFlow()
        self.busy = False
        self.task: asyncio.Future[Any] | None = None
        self._step: Awaitable[Any] | None = None
        self.setObjectName("setupWizard")
        editing = self.flow.editing
        name = self.flow.cluster_name
        self.setWindowTitle(f"Edit the configuration of {name}" if editing else "Set up a cluster")
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.setMinimumSize(860, 620)
        self.pages: dict[Page, FlowPage] = {}
        for cls in page_classes():
            page = cls(self)
            self.pages[cls.page_id] = page
            self.setPage(NEW_PAGES.index(cls.page_id), page)
        self.setStartId(NEW_PAGES.index(self.flow.pages()[0]))
        for button, name in (
            (QWizard.WizardButton.NextButton, "nextButton"),
            (QWizard.WizardButton.BackButton, "backButton"),
            (QWizard.WizardButton.FinishButton, "finishButton"),
            (QWizard.WizardButton.CancelButton, "cancelButton"),
        ):
            self.button(button).setObjectName(name)
        self.setButtonText(QWizard.WizardButton.FinishButton, "Apply to both servers")
        self.currentIdChanged.connect(self._shown)

    @classmethod
    async def edit(
        cls, backend_factory: BackendFactory, parent: QWidget | None = None
    ) -> SetupWizard:
        """A wizard over the running configuration; SetupError when it cannot be read."""
        backend = backend_factory()
        if not isinstance(backend, RunningConfigSource):
            raise SetupError("this connection cannot read the running configuration")
        flow = await SetupFlow.edit(backend, await backend.running_config())
        return cls(lambda: backend, flow, parent)

    def nextId(self) -> int:  # noqa: N802 (Qt override): the flow decides the order
        current = self.currentId()
        if current < 0:
            return NEW_PAGES.index(self.flow.pages()[0])
        nxt = self.flow.next_page(NEW_PAGES[current])
        return NEW_PAGES.index(nxt) if nxt is not None else -1

    def page_for(self, page: Page) -> FlowPage:
        return self.pages[page]

    def _shown(self, index: int) -> None:
        if index >= 0:
            self.flow.page = NEW_PAGES[index]
            self.pages[NEW_PAGES[index]].refresh()

    def run(
        self, step: Awaitable[Any], done: Callable[[Any], None] | None = None, what: str = ""
    ) -> None:
        """Run ``step`` (asking the servers) as a task; Next waits for it, its page shows
        ``what`` meanwhile; ``done`` gets its result on the GUI thread."""
        page = self.currentPage()
        label = page.busy_label if isinstance(page, FlowPage) else None

        async def body() -> None:
            try:
                result = await step
            except Exception as e:  # a bug or a transport failure the backend did not wrap
                log.exception("setup step failed")
                if isinstance(page, FlowPage):
                    page.error.setText(f"✖ {e}")
                return
            finally:
                if label is not None:
                    label.setText("")
                self._set_busy(False)
            if done is not None:
                done(result)

        # Busy at once, not when the task first runs: a second click must find Next off.
        self._set_busy(True)
        if label is not None:
            label.setText(what)
        self.task = asyncio.ensure_future(body())
        self._step = step

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        for page in self.pages.values():
            page.completeChanged.emit()
        self.button(QWizard.WizardButton.BackButton).setEnabled(not busy)
        self.busy_changed.emit(busy)

    def reject(self) -> None:
        """Cancel: a step still asking the servers is abandoned (nothing was applied)."""
        if self.task is not None and not self.task.done():
            self.task.cancel()  # perhaps before it ran at all: not busy any more either way
            self._set_busy(False)
            step = self._step
            if inspect.iscoroutine(step) and inspect.getcoroutinestate(step) == "CORO_CREATED":
                step.close()  # never started: nothing to unwind, no "never awaited" warning
        super().reject()
