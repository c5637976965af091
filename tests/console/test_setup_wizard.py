"""The setup wizard's pages over the flow, driven by their widgets' object names with the
in-memory backend: every page, its errors shown on the page, Next disabled while the
servers are asked, and a refused apply that keeps the wizard open."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QLabel, QMenu, QPushButton, QTreeWidget

from console.settings.clusters import ClusterEntry, make_entry
from console.settings.secrets import SecretStore
from console.setup.backend import SetupError
from console.setup.flow import Page
from console.ui.main_window import MainWindow
from console.ui.setup_wizard import SetupWizard
from tests.console.setup_fake import CODES, A, B, FakeBackend, two_servers
from tests.console.test_setup_flow_apply import running_text
from tests.console.wizard_drive import (
    child,
    click,
    drive,
    error_text,
    idle,
    next_page,
    type_in,
    until,
)


def test_wizard_through_every_page(qtbot: Any, run: Callable[..., Any]) -> None:
    backend = two_servers()
    backend.delay = 0.05  # each step takes a moment: Next must wait for it
    backend.unreachable["10.9.9.9:7700"] = "no route to host"
    wiz = SetupWizard(lambda: backend)
    qtbot.addWidget(wiz)
    applied: list[Any] = []
    wiz.applied.connect(applied.append)
    shots: list[str] = []
    wiz.show()
    run(drive(wiz, backend, shots.append), 60)
    assert shots == ["find", "pair", "networks", "witness", "modules", "vip", "review", "apply",
                     "apply-refused"]  # fmt: skip
    assert applied == [wiz.flow] and wiz.flow.done
    assert len(backend.applied) == 2  # the refused one, then the one both accepted


class EditableBackend(FakeBackend):
    """The fake with what "Edit configuration…" needs: the running text (GetConfig)."""

    text = ""

    async def running_config(self) -> str:
        await self._step("running_config")
        return self.text


def editable() -> EditableBackend:
    # The flow tests' helper runs its own event loops: not inside this test's running one.
    with ThreadPoolExecutor(1) as pool:
        text, done = pool.submit(running_text).result()
    backend = EditableBackend(**{f.name: getattr(done, f.name) for f in fields(FakeBackend)})
    backend.text = text
    return backend


def test_main_window_opens_the_wizard(qtbot: Any, run: Callable[..., Any], tmp_path: Path) -> None:
    backend = editable()
    asked: list[ClusterEntry | None] = []

    def factory(entry: ClusterEntry | None) -> FakeBackend:
        asked.append(entry)
        return backend

    paths = [str(tmp_path / f) for f in ("ca.pem", "c.pem", "c.key")]
    entry = make_entry("site-a", "192.168.1.11:7700", "192.168.1.12:7700", *paths)
    w = MainWindow([entry], SecretStore(), setup_backends=factory)
    qtbot.addWidget(w)
    menu = w.findChild(QMenu, "clusterMenu")
    assert menu is not None
    names = [a.objectName() for a in menu.actions()]
    assert "setupClusterAction" in names and "editConfigAction" in names
    assert w.setup_action.isEnabled() and w.config_action.isEnabled()

    w.setup_action.trigger()
    wizard = w.setup.wizard
    assert wizard is not None and asked == [None] and not wizard.flow.editing
    qtbot.waitUntil(lambda: not wizard.busy)
    assert wizard.currentPage() is wizard.page_for(Page.FIND)
    wizard.reject()

    w.config_action.trigger()
    qtbot.waitUntil(lambda: w.setup.wizard is not wizard, timeout=5000)
    edit = w.setup.wizard
    assert edit is not None and asked[1] == entry
    assert edit.flow.editing and edit.flow.version == 2
    assert edit.currentPage() is edit.page_for(Page.NETWORKS)
    assert "site-a" in edit.windowTitle()
    edit.reject()


def test_without_a_setup_connection_the_actions_are_off(qtbot: Any) -> None:
    w = MainWindow([], SecretStore())
    qtbot.addWidget(w)
    assert not w.setup_action.isEnabled() and not w.config_action.isEnabled()
    assert w.setup.open_new() is None


def test_edit_needs_a_backend_that_reads_the_running_config(run: Callable[..., Any]) -> None:
    with pytest.raises(SetupError, match="cannot read the running configuration"):
        run(SetupWizard.edit(two_servers))


def test_edit_wizard_adds_a_module(qtbot: Any, run: Callable[..., Any]) -> None:
    backend = editable()
    wiz = run(SetupWizard.edit(lambda: backend))
    qtbot.addWidget(wiz)
    wiz.show()
    assert wiz.currentPage() is wiz.page_for(Page.NETWORKS)

    async def steps() -> None:
        await next_page(wiz, Page.WITNESS)
        await next_page(wiz, Page.MODULES)
        await idle(wiz)
        type_in(wiz, "appName", "db")
        type_in(wiz, "appDirectories", "/srv/db")
        type_in(wiz, "appStart", "start-db")
        type_in(wiz, "appStop", "stop-db")
        click(wiz, "addAppButton")
        await next_page(wiz, Page.MODULES)  # /srv/db does not exist on node1
        assert "does not exist on node1 (srv-a)" in error_text(wiz)
        backend.dirs["node1"].add("/srv/db")
        await next_page(wiz, Page.VIP)
        await next_page(wiz, Page.REVIEW)
        assert "Changes: add module db" in wiz.page_for(Page.REVIEW).summary.text()
        await next_page(wiz, Page.APPLY)
        finish = child(wiz, QPushButton, "finishButton")
        assert isinstance(finish, QPushButton)
        finish.click()
        await idle(wiz)
        await until(lambda: not wiz.isVisible(), 5, error_text(wiz))

    run(steps(), 30)
    assert backend.running == {"node1": 2, "node2": 2}
    assert 'secret = "***"' in backend.applied[-1][0]  # the agents keep their own


def test_cancel_abandons_a_running_step(qtbot: Any, run: Callable[..., Any]) -> None:
    backend = two_servers()
    backend.delay = 5.0  # the discovery never ends in time
    wiz = SetupWizard(lambda: backend)
    qtbot.addWidget(wiz)
    wiz.show()
    assert wiz.busy and not child(wiz, QPushButton, "nextButton").isEnabled()  # type: ignore[attr-defined]
    task = wiz.task
    wiz.reject()
    qtbot.waitUntil(lambda: task is not None and task.done())
    assert not wiz.busy and backend.applied == []


def test_libvirt_errors_are_shown_on_the_modules_page(qtbot: Any, run: Callable[..., Any]) -> None:
    backend = two_servers()
    backend.vm_errors["node2"] = "libvirt on srv-b does not answer"
    wiz = SetupWizard(lambda: backend)
    qtbot.addWidget(wiz)
    wiz.show()

    async def steps() -> None:
        await idle(wiz)
        type_in(wiz, "clusterName", "c")
        await next_page(wiz, Page.PAIR)
        type_in(wiz, "code_node1", CODES[A])
        type_in(wiz, "code_node2", CODES[B])
        for page in (Page.NETWORKS, Page.WITNESS, Page.MODULES):
            await next_page(wiz, page)
        await idle(wiz)

    run(steps(), 30)
    label = child(wiz.currentPage(), QLabel, "vmErrors")
    assert "node2: libvirt on srv-b does not answer" in label.text()  # type: ignore[attr-defined]
    vms = child(wiz.currentPage(), QTreeWidget, "vmList")
    assert vms.topLevelItemCount() == 1  # type: ignore[attr-defined]
