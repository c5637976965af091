"""The setup flow without Qt, its end: the apply (both or neither, nothing before
Finish, a refusal naming the node) and editing a running cluster (what is kept, what
changed, the versions expected)."""

from __future__ import annotations

import pytest

from console.setup.cluster_toml import parse_running, with_agent_defaults
from console.setup.flow import Page, SetupFlow
from node_agent.config.load import parse_config
from tests.console.setup_fake import FakeBackend
from tests.console.test_setup_flow import fields, run, text
from tests.console.test_setup_flow_config import DATA_DIR, TLS, full_flow


# ----- apply ------------------------------------------------------------------------------
def test_nothing_is_applied_before_finish() -> None:
    flow, backend = full_flow()
    assert "apply" not in backend.calls and backend.applied == []
    flow.enter(Page.APPLY)
    assert not flow.can_advance()  # Finish: only once applied
    assert run(flow.apply(backend)) is True
    assert flow.done and flow.can_advance() and flow.check() == []
    assert backend.applied == [(flow.toml_text(), {"node1": 0, "node2": 0})]
    assert run(flow.apply(backend)) is True and len(backend.applied) == 1  # not twice


def test_second_node_refusing_changes_neither() -> None:
    flow, backend = full_flow()
    backend.refuse["node2"] = "module.web.directories[0]: /srv/www is inside data_dir"
    flow.enter(Page.APPLY)
    assert run(flow.apply(backend)) is False
    assert not flow.done and flow.page is Page.APPLY
    problems = flow.check()
    assert fields(problems) == ["node2 (srv-b)"]
    assert "refused: module.web.directories[0]" in problems[0].message
    assert "Nothing was changed on either server" in flow.apply_error
    assert backend.running == {}
    del backend.refuse["node2"]
    assert run(flow.apply(backend)) is True


def test_apply_failure_is_shown() -> None:
    class Down(FakeBackend):
        async def apply(self, toml_text, expected):  # type: ignore[no-untyped-def]
            from console.setup.backend import SetupError

            raise SetupError("node2 is unreachable: connection refused")

    flow, _ = full_flow()
    flow.enter(Page.APPLY)
    assert run(flow.apply(Down())) is False
    assert "node2 is unreachable" in text(flow.check())


def test_apply_refuses_a_plan_with_problems() -> None:
    flow, backend = full_flow()
    flow.module("web").start = ""
    assert run(flow.apply(backend)) is False and backend.applied == []
    assert "module web start" in flow.apply_error


# ----- editing a running cluster ----------------------------------------------------------
def running_text() -> tuple[str, FakeBackend]:
    """What GetConfig serves after the first apply: secret masked, [tls] and data_dir
    filled in by the agents, a checker tuned by hand."""
    flow, backend = full_flow()
    assert run(flow.apply(backend))
    t = with_agent_defaults(flow.toml_text(), TLS, DATA_DIR).replace(flow.secret, "***")
    t = t.replace('kind = "process"', 'kind = "process"\n  interval_s = 2')
    return t, backend


def test_edit_adds_a_module_and_keeps_the_rest() -> None:
    text_, backend = running_text()
    flow = run(SetupFlow.edit(backend, text_))
    assert flow.editing and flow.page is Page.NETWORKS and flow.pages()[0] is Page.NETWORKS
    assert flow.version == 2 and flow.expected_versions() == {"node1": 1, "node2": 1}
    assert flow.check() == []
    flow.enter(Page.MODULES)
    flow.add_vm(run(flow.load_vms(backend, "node2"))[0])
    backend.files["node2"].add("/srv/vms/access/access.xml")
    assert run(flow.validate(backend)) == []
    flow.enter(Page.VIP)
    before = len(backend.calls)
    assert run(flow.validate(backend)) == []  # web's own VIP answers: it is the cluster's
    assert not any("192.168.1.100" in c for c in backend.calls[before:])
    flow.enter(Page.REVIEW)
    assert flow.summary()[-1] == "Changes: add module access"
    new = flow.toml_text()
    assert 'secret = "***"' in new and "[tls]" in new and "data_dir" in new
    assert "interval_s = 2" in new
    cfg = parse_config(new.replace('"***"', '"' + "s" * 32 + '"'))
    assert cfg.version == 2 and [m.name for m in cfg.modules] == ["recorder", "web", "access"]
    assert cfg.module("web").checkers[0].interval_s == 2
    assert run(flow.apply(backend)) and backend.running == {"node1": 2, "node2": 2}


def test_edit_remove_module_and_change_vip() -> None:
    text_, backend = running_text()
    flow = run(SetupFlow.edit(backend, text_))
    flow.remove_module("recorder")
    flow.set_vip("web", "192.168.1.101")
    assert flow.module("web").checkers[0].extra == {"interval_s": 2}  # kept
    backend.answering.add("192.168.1.101")
    flow.enter(Page.VIP)
    assert "already answers" in text(run(flow.validate(backend)))
    backend.answering.clear()
    flow.addresses.clear()
    assert run(flow.validate(backend)) == []
    assert flow.summary()[-1] == "Changes: remove module recorder; change module web"


def test_edit_refused_when_someone_else_changed_the_cluster() -> None:
    text_, backend = running_text()
    flow = run(SetupFlow.edit(backend, text_))
    backend.running["node1"] = 3  # changed meanwhile
    flow.enter(Page.APPLY)
    assert run(flow.apply(backend)) is False
    assert "runs version 3, not 1" in text(flow.check())


def test_running_text_that_cannot_be_read() -> None:
    from console.setup.cluster_toml import RunningConfigError

    with pytest.raises(RunningConfigError):
        parse_running("[cluster\nname=")
    with pytest.raises(RunningConfigError):
        parse_running("[cluster]\nversion = 'x'\n")


def test_edit_of_networks_and_witness_is_listed() -> None:
    text_, backend = running_text()
    flow = run(SetupFlow.edit(backend, text_))
    flow.witness.tcp = ["192.168.1.254:80"]
    assert flow.summary()[-1] == "Changes: change heartbeat networks or witness"
    cfg = parse_config(flow.toml_text().replace('"***"', '"' + "s" * 20 + '"'))
    assert cfg.witness.tcp == ("192.168.1.254:80",)


def test_an_edit_keeps_the_alerts_section_it_does_not_edit() -> None:
    text_, backend = running_text()
    alerts = (
        '\n[alerts]\nsettle_s = 12\n\n[alerts.hook]\ncommand = ["/usr/local/bin/page", "-q"]\n'
        '\n[alerts.email]\nhost = "smtp.example.com"\nfrom = "mp@example.com"\n'
        'to = ["ops@example.com"]\n'
    )
    flow = run(SetupFlow.edit(backend, text_ + alerts))
    flow.witness.tcp = ["192.168.1.254:80"]
    cfg = parse_config(flow.toml_text().replace('"***"', '"' + "s" * 20 + '"'))
    assert cfg.witness.tcp == ("192.168.1.254:80",)
    assert cfg.alerts.settle_s == 12 and cfg.alerts.hook is not None
    assert cfg.alerts.hook.command == ("/usr/local/bin/page", "-q")
    assert cfg.alerts.email is not None and cfg.alerts.email.to == ("ops@example.com",)
