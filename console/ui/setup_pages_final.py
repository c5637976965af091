"""The wizard's last pages: a virtual IP per module, the review of the configuration,
and the apply (the Finish button), which stays open on a refusal saying which server
refused and why."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QTableWidgetItem

from console.setup.flow import Page
from console.setup.plan import NODE_IDS, Problem
from console.ui.setup_pages_modules import _table
from console.ui.setup_wizard import FlowPage, SetupWizard


class VipPage(FlowPage):
    page_id = Page.VIP
    title_text = "Virtual IPs"
    subtitle_text = (
        "A module's virtual IP moves with it: clients always reach it at the same address. "
        "Optional; it must be a free address in a subnet both servers are on."
    )
    COLUMNS = ["Module", "Virtual IP", "node1 interface", "node2 interface"]

    def __init__(self, wizard: SetupWizard) -> None:
        super().__init__(wizard)
        self.table = _table("vipTable", self.COLUMNS)
        self.table.itemChanged.connect(self._edited)
        self.body.addWidget(self.table, 1)
        hint = QLabel("Type an address like 192.168.1.100 (the subnet's prefix is added) "
                      "or 192.168.1.100/24; leave it empty for none.")  # fmt: skip
        hint.setObjectName("muted")
        hint.setWordWrap(True)
        self.body.addWidget(hint)
        self._filling = False
        self.finish_layout()

    def _edited(self, item: QTableWidgetItem) -> None:
        if self._filling or item.column() != 1:
            return
        self.flow.set_vip(self.flow.modules[item.row()].name, item.text())
        self.refresh()
        self.recheck()

    def refresh(self) -> None:
        self._filling = True
        self.table.setRowCount(len(self.flow.modules))
        for r, m in enumerate(self.flow.modules):
            typed = m.vip.address if m.vip is not None else ""
            ifaces = m.vip.interfaces if m.vip is not None else {}
            cells = [m.name, typed, *(ifaces.get(n, "—" if typed else "") for n in NODE_IDS)]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c != 1:
                    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                self.table.setItem(r, c, item)
        self._filling = False


class ReviewPage(FlowPage):
    page_id = Page.REVIEW
    title_text = "Review"
    subtitle_text = "What both servers will run. Nothing has been changed on them yet."

    def __init__(self, wizard: SetupWizard) -> None:
        super().__init__(wizard)
        self.summary = QLabel()
        self.summary.setObjectName("summary")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.body.addWidget(self.summary)
        self.text = QPlainTextEdit()
        self.text.setObjectName("reviewText")
        self.text.setReadOnly(True)
        self.text.setFont(QFont("DejaVu Sans Mono", 9))
        self.body.addWidget(self.text, 1)
        self.finish_layout()

    def refresh(self) -> None:
        self.summary.setText("\n".join(self.flow.summary()))
        # The secret is the cluster's heartbeat key: not shown on a desk screen.
        shown = self.flow.toml_text()
        if len(self.flow.secret) > 3:
            hidden = '"' + "•" * 12 + '"  # generated; kept in the OS keyring, not shown'
            shown = shown.replace(f'"{self.flow.secret}"', hidden)
        self.text.setPlainText(shown)
        self.show_problems(self.flow.check(self.page_id))


class ApplyPage(FlowPage):
    page_id = Page.APPLY
    title_text = "Apply to both servers"
    subtitle_text = (
        "Both servers check the configuration first; only when both accept does either "
        "change. If one refuses, neither changes and this page says why."
    )

    def __init__(self, wizard: SetupWizard) -> None:
        super().__init__(wizard)
        self.status = QLabel()
        self.status.setObjectName("applyStatus")
        self.status.setWordWrap(True)
        self.body.addWidget(self.status)
        self.finish_layout(stretch=True)

    def refresh(self) -> None:
        f = self.flow
        if f.done and f.outcome is not None:
            self.status.setText(f"✔ Both servers run version {f.outcome.version}.")
            return
        if f.apply_error:
            self.status.setText(
                "Nothing was changed on either server. Fix what is said "
                "below (Back to change the configuration) and apply again."
            )
            return
        hosts = " and ".join(f"{h.hostname} ({n})" for n, h in sorted(f.hosts.items()))
        self.status.setText(f"Press “Apply to both servers” to send version {f.version} of "
                            f"{f.cluster_name} to {hosts}.")  # fmt: skip

    async def on_next(self) -> list[Problem]:
        if await self.flow.apply(self.wiz.backend):
            self.wiz.applied.emit(self.flow)
        self.refresh()
        return self.flow.check(self.page_id) or (
            [] if self.flow.done else [Problem("apply", self.flow.apply_error or "not applied")]
        )
