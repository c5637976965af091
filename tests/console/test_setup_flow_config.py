"""The setup flow without Qt, later pages: modules (VMs from libvirt, applications,
directories, checkers), virtual IPs, the review's TOML (valid for the agent's parser),
the apply (both or neither), and editing a running cluster."""

from __future__ import annotations

from dataclasses import replace

import pytest

from console.setup.backend import VmFacts
from console.setup.cluster_toml import parse_running, with_agent_defaults
from console.setup.flow import Page, SetupFlow
from console.setup.plan import DEFAULT_WHEN, CheckerPlan, blocking
from node_agent.config import model
from node_agent.config.load import parse_config
from tests.console.setup_fake import FakeBackend, two_servers
from tests.console.test_setup_flow import fields, paired_flow, run, text

TLS = {"ca": "/etc/mirrorpair/ca.pem", "cert": "/etc/mirrorpair/{node}.pem",
       "key": "/etc/mirrorpair/{node}.key"}  # fmt: skip
DATA_DIR = "/var/lib/mirrorpair/{node}"


def agent_parse(text_: str) -> model.ClusterConfig:
    """The text as an agent reads it once pairing gave it [tls] and data_dir."""
    return parse_config(with_agent_defaults(text_, TLS, DATA_DIR))


def modules_flow(backend: FakeBackend | None = None) -> tuple[SetupFlow, FakeBackend]:
    backend = backend or two_servers()
    flow = paired_flow(backend)
    flow.enter(Page.WITNESS)
    flow.enter(Page.MODULES)
    return flow, backend


def recorder(flow: SetupFlow, backend: FakeBackend) -> None:
    vms = run(flow.load_vms(backend, "node1"))
    flow.add_vm(vms[0])


def full_flow() -> tuple[SetupFlow, FakeBackend]:
    """A VM on node1, an application with a VIP, a witness: ready to apply."""
    flow, backend = modules_flow()
    recorder(flow, backend)
    flow.add_app("web", ["/srv/www"], "systemctl start nginx", "systemctl stop nginx",
                 "systemctl is-active nginx")  # fmt: skip
    flow.witness.ping = ["192.168.1.254"]
    assert not blocking(run(flow.validate(backend)))
    flow.enter(Page.VIP)
    flow.set_vip("web", "192.168.1.100")
    assert run(flow.validate(backend)) == []
    flow.enter(Page.REVIEW)
    return flow, backend


# ----- modules ----------------------------------------------------------------------------
def test_vm_module_from_the_libvirt_list() -> None:
    flow, backend = modules_flow()
    recorder(flow, backend)
    m = flow.module("recorder")
    assert (m.kind, m.preferred, m.directories) == ("vm", "node1", ["/srv/vms/recorder"])
    assert m.domain == "recorder.xml" and m.checkers == []  # the agent's implicit ones
    assert run(flow.validate(backend)) == []
    assert "probe node1 ['/srv/vms/recorder', '/srv/vms/recorder/recorder.xml'] []" in backend.calls


def test_vm_of_node2_not_adopted_yet_is_a_warning() -> None:
    flow, backend = modules_flow()
    flow.add_vm(run(flow.load_vms(backend, "node2"))[0], name="access-control")
    m = flow.module("access-control")
    assert m.preferred == "node2" and m.domain == "access.xml"
    problems = run(flow.validate(backend))
    assert [p.warning for p in problems] == [True]
    assert "mirrorpair vm adopt access" in problems[0].message
    assert flow.can_advance()


def test_vm_list_error_is_kept() -> None:
    flow, backend = modules_flow()
    backend.vm_errors["node2"] = "libvirt on srv-b does not answer"
    assert run(flow.load_vms(backend, "node2")) == []
    assert flow.vm_errors == {"node2": "libvirt on srv-b does not answer"}


def test_vm_already_protected() -> None:
    flow, backend = modules_flow()
    backend.vms["node1"] = [replace(backend.vms["node1"][0], module="old")]
    recorder(flow, backend)
    assert "already protected by module old" in text(flow.check())


def test_vm_without_disks_needs_a_directory() -> None:
    flow, _ = modules_flow()
    flow.add_vm(VmFacts("node1", "empty", "shut off", 1, 1 << 30))
    assert fields(flow.check()) == ["module empty directories"]


def test_app_module_and_its_default_checker() -> None:
    flow, backend = modules_flow()
    m = flow.add_app("web", [" /srv/www ", ""], "start-web", "stop-web", "check-web")
    assert m.directories == ["/srv/www"]
    assert [(c.name, c.kind) for c in m.checkers] == [("process", "process")]
    assert run(flow.validate(backend)) == []
    n = flow.add_app("bare", ["/srv/bare"], "", "", "", preferred="node2")
    assert n.checkers == []
    assert fields(flow.check())[:2] == ["module bare start", "module bare stop"]


def test_no_module_is_a_warning() -> None:
    flow, _ = modules_flow()
    assert [p.warning for p in flow.check()] == [True]


def test_duplicate_module_names() -> None:
    flow, backend = modules_flow()
    recorder(flow, backend)
    flow.add_app("recorder", ["/srv/www"], "a", "b")
    assert 'the name "recorder" is used twice' in text(flow.check())
    flow.module("recorder").name = "bad name"  # the first one
    assert "A-Z a-z 0-9" in text(flow.check())


def test_missing_directory_on_the_preferred_node() -> None:
    flow, backend = modules_flow()
    flow.add_app("web", ["/srv/www"], "a", "b", preferred="node2")
    problems = run(flow.validate(backend))
    assert fields(problems) == ["module web directory /srv/www"]
    assert "does not exist on node2 (srv-b)" in problems[0].message
    backend.files["node2"] = {"/srv/file"}
    flow.module("web").directories = ["/srv/file"]
    assert "is not a directory on node2" in text(run(flow.validate(backend)))
    assert not flow.can_advance()


@pytest.mark.parametrize(
    ("first", "second", "what"),
    [
        ("/srv/vms/recorder", "/srv/vms/recorder/", "is already a directory of module a"),
        ("/srv/vms/recorder", "/srv/vms/recorder/sub", "lies inside /srv/vms/recorder"),
        ("/srv/vms/recorder/sub", "/srv/vms", "lies inside /srv/vms"),
        ("/srv/vms/recorder", "/", "must not be /"),
        ("/srv/vms/recorder", "srv/relative", "must be an absolute path"),
    ],
)
def test_nested_or_equal_directories(first: str, second: str, what: str) -> None:
    flow, _ = modules_flow()
    flow.add_app("a", [first], "a", "b")
    flow.add_app("b", [second], "a", "b")
    assert what in text(flow.check())


def test_nested_directories_within_one_module() -> None:
    flow, _ = modules_flow()
    flow.add_app("a", ["/srv/x", "/srv/x/y"], "a", "b")
    assert "(this module)" in text(flow.check())


def test_probe_failure_is_shown() -> None:
    class Broken(FakeBackend):
        async def probe(self, node_id, paths, addresses):  # type: ignore[no-untyped-def]
            from console.setup.backend import SetupError

            raise SetupError("srv-a does not answer")

    backend = two_servers()
    flow, _ = modules_flow(backend)
    flow.add_app("web", ["/srv/www"], "a", "b")
    broken = Broken(**{k: getattr(backend, k) for k in ("hosts", "paired")})
    assert "could not be checked on node1: srv-a does not answer" in text(
        run(flow.validate(broken))
    )


def test_checkers_are_checked() -> None:
    flow, _ = modules_flow()
    flow.add_app("web", ["/srv/www"], "a", "b", "c")
    flow.add_checker("web", CheckerPlan("port", "tcp", "127.0.0.1"))
    flow.add_checker("web", CheckerPlan("process", "ping", "gw"))
    flow.add_checker("web", CheckerPlan("p2", "process", "", when="both"))
    flow.add_checker("web", CheckerPlan("x", "smell", ""))
    flow.add_checker("web", CheckerPlan("y", "command", "true", action="explode"))
    got = text(flow.check())
    assert "checker port target: must be host:port" in got
    assert "checker process: the name is used twice" in got
    assert 'checker p2 when: must be "primary"' in got
    assert "checker x: kind must be one of" in got
    assert "checker y action: must be one of restart" in got
    for name in ("port", "process", "p2", "x", "y"):
        flow.remove_checker("web", name)
    assert flow.check() == []


def test_default_when_matches_the_agent() -> None:
    assert {k.value: v.value for k, v in model.DEFAULT_WHEN.items()} == DEFAULT_WHEN


def test_remove_module() -> None:
    flow, backend = modules_flow()
    recorder(flow, backend)
    flow.remove_module("recorder")
    assert flow.modules == []


# ----- virtual IP -------------------------------------------------------------------------
def vip_flow() -> tuple[SetupFlow, FakeBackend]:
    flow, backend = modules_flow()
    flow.add_app("web", ["/srv/www"], "a", "b")
    flow.add_app("db", ["/srv/db"], "a", "b")
    backend.dirs["node1"] |= {"/srv/db"}
    flow.enter(Page.VIP)
    return flow, backend


def test_vip_placed_on_each_nodes_interface() -> None:
    flow, backend = vip_flow()
    flow.set_vip("web", "192.168.1.100")
    m = flow.module("web")
    assert m.vip is not None and m.vip.interfaces == {"node1": "eth0", "node2": "eno1"}
    assert flow.vip_address(m) == "192.168.1.100/24"
    assert run(flow.validate(backend)) == []
    flow.set_vip("db", "10.10.0.50")  # eth1 on both: an uplink checker of its own
    assert [c.name for c in flow.module("db").checkers] == ["uplink"]
    flow.set_vip("db", "")
    assert flow.module("db").vip is None and flow.module("db").checkers == []


def test_vip_outside_the_nodes_subnets() -> None:
    flow, backend = vip_flow()
    flow.set_vip("web", "172.16.0.10")
    problems = run(flow.validate(backend))
    assert fields(problems) == ["module web VIP"]
    assert "in no subnet of node1 (srv-a)" in problems[0].message
    assert "eth0 192.168.1.0/24" in problems[0].message


def test_vip_in_one_nodes_subnet_only() -> None:
    backend = two_servers()
    backend.hosts = {a: replace(h, addresses=h.addresses[:2]) if "12" in a else h
                     for a, h in backend.hosts.items()}  # fmt: skip
    flow, _ = modules_flow(backend)
    flow.add_app("web", ["/srv/www"], "a", "b")
    flow.set_vip("web", "10.10.0.77")
    assert "in no subnet of node2 (srv-b)" in text(flow.check(Page.VIP))


def test_vip_equal_to_a_node_address() -> None:
    flow, _ = vip_flow()
    flow.set_vip("web", "10.10.0.2")
    assert "is node2 (srv-b)'s own address" in text(flow.check())


def test_duplicate_and_overlapping_vips() -> None:
    flow, _ = vip_flow()
    flow.set_vip("web", "192.168.1.100")
    flow.set_vip("db", "192.168.1.100/24")
    assert "already the VIP of module web" in text(flow.check())
    flow.set_vip("db", "192.168.1.100/25")
    assert "already the VIP of module web" in text(flow.check())


def test_vip_that_answers_already() -> None:
    flow, backend = vip_flow()
    backend.answering.add("192.168.1.50")
    flow.set_vip("web", "192.168.1.50")
    problems = run(flow.validate(backend))
    assert "already answers (seen from node1 (srv-a))" in text(problems)
    assert not flow.can_advance()


def test_vip_bad_form_and_broadcast() -> None:
    flow, _ = vip_flow()
    flow.set_vip("web", "192.168.1.")
    assert "must be an IP address" in text(flow.check())
    flow.set_vip("web", "192.168.1.255")
    assert "broadcast" in text(flow.check())


# ----- review -----------------------------------------------------------------------------
def test_review_text_is_a_valid_agent_config() -> None:
    flow, _ = full_flow()
    assert flow.check() == []
    cfg = agent_parse(flow.toml_text())
    assert (cfg.name, cfg.version) == ("site-a", 1)
    assert cfg.secret.decode() == flow.secret and len(flow.secret) >= 32
    assert {n: c.api for n, c in cfg.nodes.items()} == {
        "node1": "192.168.1.11:7700", "node2": "192.168.1.12:7700"}  # fmt: skip
    assert [(h.name, h.addresses) for h in cfg.heartbeat] == [
        ("eth0-eno1", {"node1": "192.168.1.11", "node2": "192.168.1.12"}),
        ("eth1", {"node1": "10.10.0.1", "node2": "10.10.0.2"}),
    ]
    assert cfg.witness.ping == ("192.168.1.254",)
    vm, web = cfg.modules
    assert vm.vm is not None and vm.vm.domain == "/srv/vms/recorder/recorder.xml"
    assert vm.directories == ("/srv/vms/recorder",) and vm.preferred == "node1"
    assert web.vip == model.VipConfig("192.168.1.100/24", {"node1": "eth0", "node2": "eno1"})
    assert [c.kind for c in web.checkers] == [model.CheckerKind.PROCESS]
    assert (web.start, web.stop, web.check) == ("systemctl start nginx", "systemctl stop nginx",
                                                "systemctl is-active nginx")  # fmt: skip


def test_review_text_leaves_tls_and_data_dir_to_the_agents() -> None:
    flow, _ = full_flow()
    t = flow.toml_text()
    assert "[tls]" not in t and "data_dir" not in t


def test_secrets_differ_per_flow() -> None:
    assert SetupFlow().secret != SetupFlow().secret


def test_review_lists_earlier_problems_and_a_summary() -> None:
    flow, _ = full_flow()
    lines = flow.summary()
    assert lines[0] == "Cluster site-a, configuration version 1"
    assert "node1: srv-a (192.168.1.11:7700)" in lines
    assert any("web (app) on node1" in x and "VIP 192.168.1.100/24" in x for x in lines)
    flow.networks[0].addresses["node1"] = "1.2.3.4"
    assert "not an address of node1" in text(flow.check())
    assert not flow.can_advance()


def test_commands_with_quotes_and_accents_survive_the_text() -> None:
    flow, backend = full_flow()
    web = flow.module("web")
    web.start = 'sh -c "echo \\"démarré\\" > /tmp/x\\tok"'
    web.stop = "pkill -f 'nginx: master'"
    cfg = agent_parse(flow.toml_text())
    assert (cfg.module("web").start, cfg.module("web").stop) == (web.start, web.stop)
    again = parse_running(flow.toml_text())
    assert again.modules[1].start == web.start


def test_a_vm_module_named_otherwise_keeps_its_definition_name() -> None:
    flow, backend = modules_flow()
    flow.add_vm(run(flow.load_vms(backend, "node1"))[0], name="vms-recorder")
    backend.dirs["node1"].add("/srv/vms/recorder")
    cfg = agent_parse(flow.toml_text())
    assert cfg.module("vms-recorder").vm.domain == "/srv/vms/recorder/recorder.xml"  # type: ignore[union-attr]
