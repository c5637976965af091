"""The wizard's modules page: the modules so far (name, node and directories editable in
place), and below, adding one: a VM from either server's libvirt, an application, or a
checker of the selected module."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from console.setup.flow import Page
from console.setup.plan import CHECKER_KINDS, NODE_IDS, CheckerPlan, ModulePlan
from console.setup.templates import ModuleTemplate, TemplateError, load_templates
from console.ui.setup_pages import button, line, split_list
from console.ui.setup_wizard import FlowPage, SetupWizard

VM = Qt.ItemDataRole.UserRole


def _table(name: str, columns: list[str]) -> QTableWidget:
    t = QTableWidget(0, len(columns))
    t.setObjectName(name)
    t.setHorizontalHeaderLabels(columns)
    t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
    t.verticalHeader().hide()
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    return t


def _what(m: ModulePlan) -> str:
    if m.kind == "vm":
        return f"VM {m.vm_domain or m.domain.removesuffix('.xml') or m.name}"
    return f"start: {m.start}; stop: {m.stop}" + (f"; check: {m.check}" if m.check else "")


class ModulesPage(FlowPage):
    page_id = Page.MODULES
    title_text = "Modules"
    subtitle_text = (
        "A module is one protected VM or application: its directory is replicated to the "
        "other server, which takes over when its server fails."
    )
    COLUMNS = ["Name", "Kind", "Preferred node", "Directories", "Runs", "Checkers"]
    EDITABLE = (0, 2, 3)

    def __init__(self, wizard: SetupWizard) -> None:
        super().__init__(wizard)
        self.table = _table("moduleTable", self.COLUMNS)
        self.table.itemChanged.connect(self._edited)
        self.table.itemSelectionChanged.connect(self._selected)
        self.body.addWidget(self.table, 2)
        remove = button("Remove module", "removeModuleButton")
        remove.clicked.connect(self._remove)
        row = QHBoxLayout()
        row.addWidget(remove)
        row.addStretch(1)
        self.body.addLayout(row)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("addTabs")
        self.tabs.addTab(self._vm_tab(), "Add a VM")
        self.tabs.addTab(self._app_tab(), "Add an application")
        self.tabs.addTab(self._checker_tab(), "Checkers")
        self.body.addWidget(self.tabs, 3)
        self._filling = False
        self._loaded = False
        self.finish_layout()

    # ----- building ---------------------------------------------------------------------
    def _vm_tab(self) -> QWidget:
        w = QWidget()
        v = QVBoxLayout(w)
        self.vms = QTreeWidget()
        self.vms.setObjectName("vmList")
        self.vms.setHeaderLabels(["VM", "Server", "State", "Disks in", "Protected by"])
        self.vms.setRootIsDecorated(False)
        self.vms.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        v.addWidget(self.vms, 1)
        row = QHBoxLayout()
        add, again = button("Add the selected VM", "addVmButton"), button("Refresh", "refreshVms")
        add.clicked.connect(self._add_vm)
        again.clicked.connect(self._load_vms)
        self.vm_errors = QLabel()
        self.vm_errors.setObjectName("vmErrors")
        self.vm_errors.setWordWrap(True)
        for x in (add, again):
            row.addWidget(x)
        row.addWidget(self.vm_errors, 1)
        v.addLayout(row)
        return w

    def _app_tab(self) -> QWidget:
        w = QWidget()
        form = QFormLayout(w)
        # A template prefills the form; the module also takes its other settings.
        self.app_template = QComboBox()
        self.app_template.setObjectName("appTemplate")
        self.template_note = QLabel()
        self.template_note.setObjectName("templateNote")
        self.template_note.setWordWrap(True)
        try:
            templates = [t for t in load_templates() if t.kind == "app"]
        except (OSError, TemplateError) as e:
            templates = []
            self.template_note.setText(f"⚠ module templates: {e}")
        self.app_template.addItem("None: type everything", None)
        for t in templates:
            self.app_template.addItem(t.title, t)
        self.app_template.currentIndexChanged.connect(self._template_chosen)
        form.addRow("Template", self.app_template)
        form.addRow("", self.template_note)
        self.app_name = line("appName", "e.g. access-control")
        self.app_node = QComboBox()
        self.app_node.setObjectName("appNode")
        self.app_node.addItems(list(NODE_IDS))
        self.app_dirs = line("appDirectories", "replicated directories, e.g. /srv/access")
        self.app_start = line("appStart", "e.g. systemctl start access-control")
        self.app_stop = line("appStop", "e.g. systemctl stop access-control")
        self.app_check = line("appCheck", "optional, e.g. systemctl is-active access-control")
        add = button("Add the application", "addAppButton")
        add.clicked.connect(self._add_app)
        for label, field in (("Name", self.app_name), ("Preferred node", self.app_node),
                             ("Directories", self.app_dirs), ("Start", self.app_start),
                             ("Stop", self.app_stop), ("Check", self.app_check)):  # fmt: skip
            form.addRow(label, field)
        form.addRow("", add)
        return w

    def _checker_tab(self) -> QWidget:
        w = QWidget()
        v = QVBoxLayout(w)
        self.checker_module = QLabel("Select a module above to see its checkers.")
        self.checker_module.setObjectName("checkerModule")
        v.addWidget(self.checker_module)
        self.checkers = _table("checkerTable", ["Name", "Kind", "Target", "Action", "When"])
        self.checkers.itemChanged.connect(self._checker_edited)
        v.addWidget(self.checkers, 1)
        row = QHBoxLayout()
        self.checker_name = line("checkerName", "name")
        self.checker_kind = QComboBox()
        self.checker_kind.setObjectName("checkerKind")
        self.checker_kind.addItems(list(CHECKER_KINDS))
        self.checker_target = line("checkerTarget", "target: host:port, host, interface, command")
        add, remove = button("Add", "addCheckerButton"), button("Remove", "removeCheckerButton")
        add.clicked.connect(self._add_checker)
        remove.clicked.connect(self._remove_checker)
        for x in (self.checker_name, self.checker_kind, self.checker_target, add, remove):
            row.addWidget(x, 1 if x is self.checker_target else 0)
        v.addLayout(row)
        return w

    # ----- steps ------------------------------------------------------------------------
    def start(self) -> None:
        if not self._loaded:
            self._loaded = True
            self._load_vms()

    def _load_vms(self) -> None:
        async def both() -> None:
            for node in NODE_IDS:
                await self.flow.load_vms(self.wiz.backend, node)

        self.wiz.run(both(), lambda _r: self.refresh(), "Asking both servers' libvirt…")

    def _add_vm(self) -> None:
        item = self.vms.currentItem()
        if item is None:
            self.error.setText("✖ VM: select one in the list first")
            return
        self.flow.add_vm(item.data(0, VM))
        self._changed()

    def _template(self) -> ModuleTemplate | None:
        t = self.app_template.currentData()
        return t if isinstance(t, ModuleTemplate) else None

    def _template_chosen(self) -> None:
        t = self._template()
        self.template_note.setText(t.description if t is not None else "")
        if t is None:
            return
        p = t.plan
        for field, text in ((self.app_name, p.name), (self.app_dirs, ", ".join(p.directories)),
                            (self.app_start, p.start), (self.app_stop, p.stop),
                            (self.app_check, p.check)):  # fmt: skip
            field.setText(text)
        self.app_node.setCurrentText(p.preferred)

    def _add_app(self) -> None:
        self.flow.add_app(self.app_name.text(), split_list(self.app_dirs.text()),
                          self.app_start.text(), self.app_stop.text(), self.app_check.text(),
                          self.app_node.currentText(), template=self._template())  # fmt: skip
        for field in (self.app_name, self.app_dirs, self.app_start, self.app_stop, self.app_check):
            field.clear()
        self.app_template.setCurrentIndex(0)
        self._changed()

    def _remove(self) -> None:
        m = self._current()
        if m is not None:
            self.flow.remove_module(m.name)
            self._changed()

    def _current(self) -> ModulePlan | None:
        row = self.table.currentRow()
        return self.flow.modules[row] if 0 <= row < len(self.flow.modules) else None

    def _add_checker(self) -> None:
        m = self._current()
        if m is None:
            self.error.setText("✖ checker: select its module in the list above first")
            return
        name = self.checker_name.text().strip() or self.checker_kind.currentText()
        checker = CheckerPlan(name, self.checker_kind.currentText(), self.checker_target.text())
        self.flow.add_checker(m.name, checker)
        self.checker_name.clear()
        self.checker_target.clear()
        self._changed()

    def _remove_checker(self) -> None:
        m, row = self._current(), self.checkers.currentRow()
        if m is not None and 0 <= row < len(m.checkers):
            self.flow.remove_checker(m.name, m.checkers[row].name)
            self._changed()

    def _changed(self) -> None:
        self.refresh()
        self.recheck()

    # ----- edits in place ---------------------------------------------------------------
    def _edited(self, item: QTableWidgetItem) -> None:
        if self._filling:
            return
        m, text = self.flow.modules[item.row()], item.text().strip()
        if item.column() == 0:
            m.name = text
        elif item.column() == 2:
            m.preferred = text
        elif item.column() == 3:
            m.directories = split_list(text)
        self.recheck()

    def _checker_edited(self, item: QTableWidgetItem) -> None:
        m = self._current()
        if self._filling or m is None:
            return
        c = m.checkers[item.row()]
        attr = ("name", "kind", "target", "action", "when")[item.column()]
        text = item.text().strip()
        setattr(c, attr, "" if attr == "when" and text.startswith("(") else text)
        self.recheck()

    def _selected(self) -> None:
        if not self._filling:
            self._fill_checkers()

    # ----- showing ----------------------------------------------------------------------
    def refresh(self) -> None:
        self._filling = True
        row = self.table.currentRow()
        self.table.setRowCount(len(self.flow.modules))
        for r, m in enumerate(self.flow.modules):
            checkers = ", ".join(c.name for c in m.checkers) or (
                "implicit" if m.kind == "vm" else "none"
            )
            cells = [m.name, m.kind, m.preferred, ", ".join(m.directories), _what(m), checkers]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c not in self.EDITABLE:
                    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                self.table.setItem(r, c, item)
        if self.flow.modules:
            self.table.selectRow(min(max(row, 0), len(self.flow.modules) - 1))
        self.vms.clear()
        for node in NODE_IDS:
            for vm in self.flow.vms.get(node, []):
                dirs = sorted({d.path.rsplit("/", 1)[0] for d in vm.disks}) or ["no disk"]
                h = self.flow.hosts.get(node)
                server = f"{node} ({h.hostname})" if h else node
                item = QTreeWidgetItem([vm.domain, server, vm.state, ", ".join(dirs), vm.module])
                item.setData(0, VM, vm)
                self.vms.addTopLevelItem(item)
        errors = [f"{n}: {e}" for n, e in sorted(self.flow.vm_errors.items())]
        self.vm_errors.setText("⚠ " + "; ".join(errors) if errors else "")
        self._filling = False
        self._fill_checkers()

    def _fill_checkers(self) -> None:
        m = self._current()
        self._filling = True
        checkers = m.checkers if m is not None else []
        self.checkers.setRowCount(len(checkers))
        for r, c in enumerate(checkers):
            when = c.when or "(default)"
            for col, text in enumerate([c.name, c.kind, c.target, c.action, when]):
                self.checkers.setItem(r, col, QTableWidgetItem(text))
        if m is None:
            self.checker_module.setText("Select a module above to see its checkers.")
        else:
            implicit = " (the agent adds the domain's state and the standby's libvirt)"
            self.checker_module.setText(f"Checkers of {m.name}" + (implicit * (m.kind == "vm")))
        self._filling = False
