"""resources/templates/*.toml: each module template, added to the full example
configuration, is accepted by the agents' real config loader with the settings it
promises; the wizard's Qt-free flow offers them for a new application and the
configuration it then writes is valid for the agents too."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QLabel

from console.setup.flow import Page
from console.setup.plan import blocking
from console.setup.templates import (
    ModuleTemplate,
    TemplateError,
    load_templates,
    parse_template,
)
from node_agent.config import model
from node_agent.config.load import parse_config
from tests.console.test_setup_flow import run
from tests.console.test_setup_flow_config import agent_parse, modules_flow

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "resources" / "templates"
EXAMPLE = (ROOT / "resources" / "config" / "cluster.example.toml").read_text()


def _with(*texts: str) -> model.ClusterConfig:
    return parse_config("\n".join((EXAMPLE, *texts)), source="<string>")


def _templates() -> dict[str, ModuleTemplate]:
    return {t.key: t for t in load_templates(TEMPLATES)}


def test_the_common_cases_are_there() -> None:
    templates = _templates()
    assert set(templates) == {"vm", "service-directory", "postgresql", "mariadb"}
    assert templates["vm"].kind == "vm"
    for t in templates.values():
        assert t.title and t.description, t.key


@pytest.mark.parametrize("key", ["vm", "service-directory", "postgresql", "mariadb"])
def test_each_template_loads_into_the_example_config(key: str) -> None:
    text = (TEMPLATES / f"{key}.toml").read_text()
    cfg = _with(text)
    m = cfg.modules[-1]
    assert len(cfg.modules) == 2 and m.name != "web"
    assert m.directories and m.autostart
    if key == "vm":
        assert m.kind == "vm" and m.vm is not None and m.vm.guest_agent
        assert m.vm.domain == f"{m.directories[0]}/{m.name}.xml"
        assert not m.write_cache and m.stop_timeout_s == 120
        return
    assert m.kind == "app" and m.start and m.stop and m.check
    assert m.vip is not None and {c.kind for c in m.checkers} >= {
        model.CheckerKind.PROCESS,
        model.CheckerKind.INTERFACE,
    }
    if key in ("postgresql", "mariadb"):
        # Durability: synchronous replication, and fsync returns once both have the data.
        assert m.async_mode == "sync" and m.write_cache and m.start_timeout_s >= 120


def test_all_templates_together_in_one_config() -> None:
    cfg = _with(*(p.read_text() for p in sorted(TEMPLATES.glob("*.toml"))))
    assert [m.name for m in cfg.modules] == ["web", "mariadb", "postgresql", "fileshare", "vm1"]


def test_a_bad_template_is_named() -> None:
    with pytest.raises(TemplateError, match="template x: must hold exactly one"):
        parse_template("# X\n[cluster]\nname = 'a'\n", "x")
    with pytest.raises(TemplateError, match="template y: the first line must be a comment"):
        parse_template("[[module]]\nname = 'a'\n", "y")


def test_wizard_adds_an_application_from_a_template() -> None:
    tpl = _templates()["postgresql"]
    flow, backend = modules_flow()
    p = tpl.plan  # the page prefills its form with these; the operator edits the directory
    m = flow.add_app(p.name, ["/srv/www"], p.start, p.stop, p.check, template=tpl)
    assert m.extra["write_cache"] is True and m.extra["async"] == "sync"
    assert m.extra["start_timeout_s"] == 120
    # The template's checkers, without its example interface (the VIP page adds the real one).
    assert [(c.name, c.kind) for c in m.checkers] == [("process", "process"), ("sql", "command")]
    assert not blocking(run(flow.validate(backend)))
    flow.enter(Page.VIP)
    flow.set_vip("postgresql", "192.168.1.120")
    assert run(flow.validate(backend)) == []
    flow.enter(Page.REVIEW)
    cfg = agent_parse(flow.toml_text())
    db = cfg.module("postgresql")
    assert db.write_cache and db.async_mode == "sync" and db.start_timeout_s == 120
    assert db.check == "pg_isready -q -h 127.0.0.1 -p 5432"
    # The VIP typed on its page, not the template's example (10.0.0.120); the servers' own
    # interfaces (eth0, eno1: two names, so no uplink checker).
    assert db.vip == model.VipConfig("192.168.1.120/24", {"node1": "eth0", "node2": "eno1"})
    assert [c.name for c in db.checkers] == ["process", "sql"]


def test_template_without_a_check_command_drops_the_process_checker() -> None:
    tpl = _templates()["service-directory"]
    flow, backend = modules_flow()
    m = flow.add_app("share", ["/srv/www"], "start-it", "stop-it", "", template=tpl)
    assert [c.name for c in m.checkers] == ["port"]
    assert not blocking(run(flow.validate(backend)))
    with pytest.raises(ValueError, match="template vm is for a vm module"):
        flow.add_app("x", ["/srv/x"], "a", "b", template=_templates()["vm"])


def test_modules_page_offers_the_templates(qtbot: Any, run: Callable[..., Any]) -> None:
    from PySide6.QtWidgets import QComboBox, QLineEdit

    from console.ui.setup_wizard import SetupWizard
    from tests.console.test_setup_wizard import editable
    from tests.console.wizard_drive import child, click, idle, next_page, type_in

    backend = editable()
    backend.dirs["node1"].add("/var/lib/mysql")
    wiz = run(SetupWizard.edit(lambda: backend))
    qtbot.addWidget(wiz)
    wiz.show()

    def text(name: str) -> str:
        field = child(wiz, QLineEdit, name)
        assert isinstance(field, QLineEdit)
        return field.text()

    async def steps() -> None:
        await next_page(wiz, Page.WITNESS)
        await next_page(wiz, Page.MODULES)
        await idle(wiz)
        combo = child(wiz, QComboBox, "appTemplate")
        assert isinstance(combo, QComboBox)
        titles = [combo.itemText(i) for i in range(combo.count())]
        assert titles[0].startswith("None") and "A MariaDB / MySQL database" in titles
        assert "A virtual machine" not in titles  # VMs come from the servers' libvirt
        combo.setCurrentIndex(titles.index("A MariaDB / MySQL database"))
        assert (text("appName"), text("appDirectories")) == ("mariadb", "/var/lib/mysql")
        assert text("appCheck") == "mariadb-admin --protocol=socket ping --silent"
        note = child(wiz, QLabel, "templateNote")
        assert isinstance(note, QLabel) and "innodb_flush_log_at_trx_commit" in note.text()
        type_in(wiz, "appName", "db")
        click(wiz, "addAppButton")
        assert combo.currentIndex() == 0 and text("appName") == ""
        await next_page(wiz, Page.VIP)

    run(steps(), 30)
    m = wiz.flow.module("db")
    assert m.extra["write_cache"] is True and m.extra["start_timeout_s"] == 120
    assert [c.name for c in m.checkers] == ["process", "port"]
    wiz.reject()
