"""The wizard's first pages: find the servers, pair with them, heartbeat networks and the
witness. Each page only shows the flow's state and passes edits on to it."""

from __future__ import annotations

import re

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTreeWidget,
    QTreeWidgetItem,
)

from console.setup.backend import FoundServer
from console.setup.flow import Page
from console.setup.netplan import usable
from console.setup.plan import NODE_IDS, NetworkPlan
from console.ui.setup_wizard import FlowPage, SetupWizard
from console.ui.theme import set_role

ADDRESS = Qt.ItemDataRole.UserRole


def button(text: str, name: str) -> QPushButton:
    b = QPushButton(text)
    b.setObjectName(name)
    b.setAutoDefault(False)  # Return in a field must not press it (nor Next)
    return b


def line(name: str, placeholder: str = "") -> QLineEdit:
    e = QLineEdit()
    e.setObjectName(name)
    e.setPlaceholderText(placeholder)
    return e


def split_list(text: str) -> list[str]:
    return [x for x in re.split(r"[,\s]+", text.strip()) if x]


def server_state(s: FoundServer) -> str:
    if s.paired and not s.pairing_open:
        return f"paired to {s.cluster_name or 'another cluster'} (pairing closed)"
    if s.paired:
        return f"paired to {s.cluster_name or 'another cluster'}, pairing reopened"
    return "ready to pair" if s.pairing_open else "pairing closed"


class FindPage(FlowPage):
    page_id = Page.FIND
    title_text = "Find the two servers"
    subtitle_text = (
        "Servers running the MirrorPair agent on this network are listed. Type an address "
        "for one that is not. Tick two: the first becomes node1."
    )

    def __init__(self, wizard: SetupWizard) -> None:
        super().__init__(wizard)
        form = QFormLayout()
        self.name = line("clusterName", "e.g. headquarters")
        self.name.textEdited.connect(self._name_edited)
        form.addRow("Cluster name", self.name)
        self.body.addLayout(form)
        self.servers = QTreeWidget()
        self.servers.setObjectName("serverList")
        self.servers.setHeaderLabels(["Server", "Address", "Becomes", "State", "Found by"])
        self.servers.setRootIsDecorated(False)
        self.servers.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.servers.itemChanged.connect(self._item_changed)
        self.body.addWidget(self.servers, 1)
        row = QHBoxLayout()
        self.address = line("addressField", "address of a server not listed: host or host:port")
        self.address.returnPressed.connect(self._add)
        self.add = button("Add", "addAddressButton")
        self.add.clicked.connect(self._add)
        self.discover = button("Search again", "discoverButton")
        self.discover.clicked.connect(self._discover)
        self.swap = button("Swap node1 / node2", "swapNodes")
        self.swap.clicked.connect(self._swap)
        for w in (self.address, self.add, self.discover, self.swap):
            row.addWidget(w, 1 if w is self.address else 0)
        self.body.addLayout(row)
        self._filling = False
        self._searched = False
        self.finish_layout()

    def start(self) -> None:
        if not self._searched:
            self._searched = True
            self._discover()

    def _discover(self) -> None:
        self.wiz.run(self.flow.discover(self.wiz.backend), self._after, "Looking for servers…")

    def _add(self) -> None:
        text = self.address.text().strip()
        if text:
            step = self.flow.reach(self.wiz.backend, text)
            self.wiz.run(step, self._reached, f"Reaching {text}…")

    def _reached(self, server: FoundServer | None) -> None:
        if server is not None:
            self.address.clear()
        self._after(None)

    def _after(self, _result: object) -> None:
        self.refresh()
        self.recheck()

    def _swap(self) -> None:
        self.flow.swap_nodes()
        self._after(None)

    def _name_edited(self, text: str) -> None:
        self.flow.cluster_name = text.strip()
        self.recheck()

    def _item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if self._filling or column != 0:
            return
        address = item.data(0, ADDRESS)
        if item.checkState(0) == Qt.CheckState.Checked:
            self.flow.choose(address)
        else:
            self.flow.unchoose(address)
        self._after(None)

    def refresh(self) -> None:
        if self.name.text().strip() != self.flow.cluster_name:
            self.name.setText(self.flow.cluster_name)
        roles = {a: n for n, a in self.flow.chosen.items()}
        self._filling = True
        self.servers.clear()
        for s in self.flow.servers:
            found_by = "typed address" if s.source == "typed" else "discovered"
            cells = [s.hostname, s.address, roles.get(s.address, ""), server_state(s), found_by]
            item = QTreeWidgetItem(cells)
            item.setData(0, ADDRESS, s.address)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            checked = s.address in roles
            item.setCheckState(0, Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
            self.servers.addTopLevelItem(item)
        self._filling = False
        self.swap.setEnabled(bool(self.flow.chosen))


class PairPage(FlowPage):
    page_id = Page.PAIR
    title_text = "Pair with the servers"
    subtitle_text = (
        "Each server printed a one-time pairing code when its agent was installed (also in "
        "its log: journalctl -u mirrorpair-agent). Type both; Next pairs them and installs "
        "the cluster's certificates."
    )

    def __init__(self, wizard: SetupWizard) -> None:
        super().__init__(wizard)
        self.codes: dict[str, QLineEdit] = {}
        self.servers: dict[str, QLabel] = {}
        self.status: dict[str, QLabel] = {}
        for node in NODE_IDS:
            box = QGroupBox(node)
            form = QFormLayout(box)
            self.servers[node] = QLabel()
            self.servers[node].setObjectName(f"server_{node}")
            code = line(f"code_{node}", "XXXX-XXXX-XXXX")
            code.textEdited.connect(lambda text, n=node: self._code(n, text))
            self.codes[node] = code
            pair = button("Pair", f"pair_{node}")
            pair.clicked.connect(lambda _=False, n=node: self._pair(n))
            row = QHBoxLayout()
            row.addWidget(code, 1)
            row.addWidget(pair)
            self.status[node] = QLabel()
            self.status[node].setObjectName(f"status_{node}")
            self.status[node].setWordWrap(True)
            form.addRow("Server", self.servers[node])
            form.addRow("Pairing code", row)
            form.addRow("", self.status[node])
            self.body.addWidget(box)
        # No OS keyring: the operator must know that secrets last for this session only.
        self.secrets_note = QLabel("")
        self.secrets_note.setObjectName("secretsNote")
        self.secrets_note.setWordWrap(True)
        set_role(self.secrets_note, "level", "warning")
        self.body.addWidget(self.secrets_note)
        self.finish_layout(stretch=True)

    def _code(self, node: str, text: str) -> None:
        self.flow.codes[node] = text
        self.flow.pair_errors.pop(node, None)  # a new code: the old refusal is history
        self.status[node].setText("")
        self.error.setText("")  # the refusal was about the code just replaced

    def _pair(self, node: str) -> None:
        step = self.flow.pair(self.wiz.backend, node)
        self.wiz.run(step, lambda _r: (self.refresh(), self.recheck()), f"Pairing {node}…")

    def refresh(self) -> None:
        note = getattr(self.wiz.backend, "secrets_note", None)
        self.secrets_note.setText(note() if callable(note) else "")
        for node in NODE_IDS:
            s = self.flow.server(self.flow.chosen.get(node, ""))
            # The fingerprint is printed next to the code on the server: compare them.
            fp = f", certificate {s.fingerprint[:16]}…" if s and s.fingerprint else ""
            self.servers[node].setText(f"{s.hostname} ({s.address}){fp}" if s else "not chosen")
            code = self.flow.codes.get(node, "")
            if self.codes[node].text() != code:
                self.codes[node].setText(code)
            h = self.flow.hosts.get(node)
            self.codes[node].setEnabled(h is None)
            if h is not None:
                nets = len(usable(h))
                text = f"✔ Paired: {h.hostname}, {nets} network address{'es' * (nets != 1)}"
            else:
                text = self.flow.pair_errors.get(node, "")
            self.status[node].setText(text)
            set_role(self.status[node], "level", "ok" if h is not None else "error")


class NetworksPage(FlowPage):
    page_id = Page.NETWORKS
    title_text = "Heartbeat networks"
    subtitle_text = (
        "The servers watch each other over these networks. Two or more on separate links "
        "(e.g. the LAN and a direct cable) keep one broken cable from looking like a dead "
        "server. Proposed from the subnets both servers are on."
    )
    COLUMNS = ["Use", "Name", "node1 address", "node2 address", "Port"]

    def __init__(self, wizard: SetupWizard) -> None:
        super().__init__(wizard)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setObjectName("networkTable")
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.itemChanged.connect(self._edited)
        self.body.addWidget(self.table, 1)
        row = QHBoxLayout()
        add, remove = button("Add a network", "addNetwork"), button("Remove", "removeNetwork")
        add.clicked.connect(self._add)
        remove.clicked.connect(self._remove)
        row.addWidget(add)
        row.addWidget(remove)
        row.addStretch(1)
        self.body.addLayout(row)
        self.addresses = QLabel()
        self.addresses.setObjectName("nodeAddresses")
        self.addresses.setWordWrap(True)
        self.body.addWidget(self.addresses)
        self._filling = False
        self.finish_layout()

    def _add(self) -> None:
        n = len(self.flow.networks) + 1
        self.flow.networks.append(NetworkPlan(f"net{n}", dict.fromkeys(NODE_IDS, "")))
        self.refresh()
        self.recheck()

    def _remove(self) -> None:
        rows = sorted({i.row() for i in self.table.selectedIndexes()}, reverse=True)
        for r in rows:
            del self.flow.networks[r]
        self.refresh()
        self.recheck()

    def _edited(self, item: QTableWidgetItem) -> None:
        if self._filling:
            return
        net = self.flow.networks[item.row()]
        col, text = item.column(), item.text().strip()
        if col == 0:
            net.use = item.checkState() == Qt.CheckState.Checked
        elif col == 1:
            net.name = text
        elif col in (2, 3):
            net.addresses[NODE_IDS[col - 2]] = text
        else:
            net.port = int(text) if text.isdigit() else 0
        self.recheck()

    def refresh(self) -> None:
        self._filling = True
        self.table.setRowCount(len(self.flow.networks))
        for r, net in enumerate(self.flow.networks):
            use = QTableWidgetItem("")
            use.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
            use.setCheckState(Qt.CheckState.Checked if net.use else Qt.CheckState.Unchecked)
            self.table.setItem(r, 0, use)
            cells = [net.name, *(net.addresses.get(n, "") for n in NODE_IDS), str(net.port)]
            for c, text in enumerate(cells, start=1):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self._filling = False
        lines = []
        for node in NODE_IDS:
            h = self.flow.hosts.get(node)
            if h is not None:
                mine = ", ".join(f"{a.interface} {i}" for a, i in usable(h)) or "none"
                lines.append(f"{node} ({h.hostname}): {mine}")
        self.addresses.setText("Addresses: " + "; ".join(lines) if lines else "")


class WitnessPage(FlowPage):
    page_id = Page.WITNESS
    title_text = "Witness (optional)"
    subtitle_text = (
        "A node that cannot reach its peer but still reaches a witness knows the peer, not "
        "itself, is cut off. A router or a switch both servers reach is a good witness."
    )

    def __init__(self, wizard: SetupWizard) -> None:
        super().__init__(wizard)
        form = QFormLayout()
        self.ping = line("witnessPing", "IP addresses to ping, e.g. 192.168.1.254")
        self.tcp = line("witnessTcp", "host:port to connect to, e.g. 192.168.1.254:80")
        self.ping.textEdited.connect(lambda t: self._set("ping", t))
        self.tcp.textEdited.connect(lambda t: self._set("tcp", t))
        form.addRow("Ping", self.ping)
        form.addRow("TCP", self.tcp)
        self.body.addLayout(form)
        self.finish_layout(stretch=True)

    def _set(self, kind: str, text: str) -> None:
        setattr(self.flow.witness, kind, split_list(text))
        self.recheck()

    def refresh(self) -> None:
        for field, items in (
            (self.ping, self.flow.witness.ping),
            (self.tcp, self.flow.witness.tcp),
        ):
            if split_list(field.text()) != items:
                field.setText(", ".join(items))


def page_classes() -> list[type[FlowPage]]:
    from console.ui.setup_pages_final import ApplyPage, ReviewPage, VipPage
    from console.ui.setup_pages_modules import ModulesPage

    return [FindPage, PairPage, NetworksPage, WitnessPage, ModulesPage, VipPage, ReviewPage,
            ApplyPage]  # fmt: skip
