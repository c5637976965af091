"""Drive the setup wizard through every page as an operator would, by the widgets'
object names (the same names an end-to-end test uses), with a screenshot hook per page.
Used by tests/console/test_setup_wizard.py and installer/screenshot_wizard.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTreeWidget,
    QWidget,
)

from console.setup.flow import Page
from console.ui.setup_wizard import SetupWizard
from tests.console.setup_fake import CODES, A, B, FakeBackend

Shot = Callable[[str], None]


def child(parent: QWidget, cls: type, name: str) -> object:
    w = parent.findChild(cls, name)
    assert w is not None, f"no {cls.__name__} named {name!r}"
    return w


def error_text(wiz: SetupWizard) -> str:
    return child(wiz.currentPage(), QLabel, "error").text()  # type: ignore[attr-defined]


def warning_text(wiz: SetupWizard) -> str:
    return child(wiz.currentPage(), QLabel, "warning").text()  # type: ignore[attr-defined]


async def until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        await asyncio.sleep(0.02)


async def idle(wiz: SetupWizard) -> None:
    await asyncio.sleep(0)
    await until(lambda: not wiz.busy, what="the wizard's step")


def type_in(wiz: SetupWizard, name: str, text: str) -> None:
    field = child(wiz.currentPage(), QLineEdit, name)
    assert isinstance(field, QLineEdit)
    field.setText(text)
    field.textEdited.emit(text)  # as typing does (setText alone does not)


def click(wiz: SetupWizard, name: str, parent: QWidget | None = None) -> None:
    b = child(parent or wiz.currentPage(), QPushButton, name)
    assert isinstance(b, QPushButton) and b.isEnabled(), f"{name} is not enabled"
    b.click()


async def next_page(wiz: SetupWizard, expect: Page) -> None:
    nxt = child(wiz, QPushButton, "nextButton")
    assert isinstance(nxt, QPushButton)
    nxt.click()
    await idle(wiz)
    await until(lambda: wiz.flow.page is expect, 5, f"page {expect}: {error_text(wiz)}")


async def drive(wiz: SetupWizard, backend: FakeBackend, shot: Shot) -> None:
    """From the first page to a refused apply and then a successful one."""
    await idle(wiz)  # the discovery started when the wizard opened
    servers = child(wiz, QTreeWidget, "serverList")
    assert isinstance(servers, QTreeWidget) and servers.topLevelItemCount() == 2
    type_in(wiz, "addressField", "10.9.9.9")  # a server that does not answer
    click(wiz, "addAddressButton")
    await idle(wiz)
    assert "10.9.9.9:7700" in warning_text(wiz)
    type_in(wiz, "clusterName", "headquarters")
    shot("find")
    await next_page(wiz, Page.PAIR)

    type_in(wiz, "code_node1", "AAAA-BBBB-CCCC")
    click(wiz, "pair_node1")
    await idle(wiz)
    assert "2 attempts left" in error_text(wiz)
    type_in(wiz, "code_node2", CODES[B])
    shot("pair")
    type_in(wiz, "code_node1", CODES[A].lower().replace("-", ""))
    nxt = child(wiz, QPushButton, "nextButton")
    assert isinstance(nxt, QPushButton)
    nxt.click()
    assert not nxt.isEnabled()  # while the servers are being paired
    await idle(wiz)
    await until(lambda: wiz.flow.page is Page.NETWORKS, 5, error_text(wiz))
    assert set(backend.paired) == {"node1", "node2"}

    table = child(wiz.currentPage(), QTableWidget, "networkTable")
    assert isinstance(table, QTableWidget) and table.rowCount() == 2
    use = table.item(1, 0)
    use.setCheckState(Qt.CheckState.Unchecked)
    assert "only one network" in warning_text(wiz)
    use.setCheckState(Qt.CheckState.Checked)
    table.item(1, 2).setText("10.10.0.9")  # not srv-a's
    assert "not an address of node1 (srv-a)" in error_text(wiz)
    table.item(1, 2).setText("10.10.0.1")
    table.item(1, 1).setText("direct")
    assert error_text(wiz) == ""
    shot("networks")
    await next_page(wiz, Page.WITNESS)

    type_in(wiz, "witnessPing", "192.168.1.254")
    shot("witness")
    await next_page(wiz, Page.MODULES)

    await idle(wiz)  # both servers' VMs
    vms = child(wiz.currentPage(), QTreeWidget, "vmList")
    assert isinstance(vms, QTreeWidget) and vms.topLevelItemCount() == 2
    vms.setCurrentItem(vms.topLevelItem(0))
    click(wiz, "addVmButton")
    page = wiz.currentPage()
    type_in(wiz, "appName", "recorder")  # the VM's name again: refused
    type_in(wiz, "appDirectories", "/srv/vms/recorder/db")
    type_in(wiz, "appStart", "systemctl start web")
    type_in(wiz, "appStop", "systemctl stop web")
    type_in(wiz, "appCheck", "systemctl is-active web")
    click(wiz, "addAppButton")
    assert "used twice" in error_text(wiz) and "lies inside" in error_text(wiz)
    modules = child(page, QTableWidget, "moduleTable")
    assert isinstance(modules, QTableWidget) and modules.rowCount() == 2
    modules.item(1, 0).setText("web")
    modules.item(1, 3).setText("/srv/www")
    assert error_text(wiz) == ""
    shot("modules")
    await next_page(wiz, Page.VIP)

    vips = child(wiz.currentPage(), QTableWidget, "vipTable")
    assert isinstance(vips, QTableWidget) and vips.rowCount() == 2
    backend.answering.add("192.168.1.50")
    vips.item(1, 1).setText("192.168.1.50")
    await next_page(wiz, Page.VIP)  # refused: it answers
    assert "already answers" in error_text(wiz)
    vips.item(1, 1).setText("192.168.1.100")
    assert vips.item(1, 2).text() == "eth0" and vips.item(1, 3).text() == "eno1"
    shot("vip")
    await next_page(wiz, Page.REVIEW)

    review = child(wiz.currentPage(), QPlainTextEdit, "reviewText")
    assert isinstance(review, QPlainTextEdit)
    assert 'name = "headquarters"' in review.toPlainText()
    assert wiz.flow.secret not in review.toPlainText()  # not shown on screen
    assert backend.applied == []  # nothing before Finish
    shot("review")
    await next_page(wiz, Page.APPLY)
    shot("apply")

    backend.refuse["node2"] = "cannot write /etc/mirrorpair/cluster.toml: read-only file system"
    finish = child(wiz, QPushButton, "finishButton")
    assert isinstance(finish, QPushButton)
    finish.click()
    await idle(wiz)
    assert "node2 (srv-b)" in error_text(wiz) and "read-only" in error_text(wiz)
    assert wiz.isVisible() and not wiz.flow.done
    shot("apply-refused")
    del backend.refuse["node2"]
    finish.click()
    await idle(wiz)
    await until(lambda: not wiz.isVisible(), 5, "the wizard closes once applied")
    assert backend.running == {"node1": 1, "node2": 1}
