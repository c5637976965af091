"""The config loader: a valid file round-trips; every bad value names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from node_agent.config.load import ConfigError, load_config, parse_config
from node_agent.config.model import CheckerAction, CheckerKind

EXAMPLE = Path(__file__).resolve().parents[2] / "resources" / "config" / "cluster.example.toml"

BASE = """\
[cluster]
name = "demo"
secret = "0123456789abcdef-secret"
pulse_ms = 500
timeout_ms = 3000
data_dir = "/tmp/mp/{node}"

[tls]
ca = "/etc/mp/ca.pem"
cert = "/etc/mp/{node}.pem"
key = "/etc/mp/{node}.key"

[nodes.node1]
api = "127.0.0.1:7700"

[nodes.node2]
api = "127.0.0.2:7700"

[[heartbeat]]
name = "lan"
node1 = "10.0.0.1"
node2 = "10.0.0.2"

[[heartbeat]]
name = "direct"
node1 = "192.168.1.1"
node2 = "192.168.1.2"
port = 7702

[witness]
ping = ["10.0.0.254"]
tcp = ["10.0.0.254:80"]

[[module]]
name = "web"
kind = "app"
start = "start-web"
stop = "stop-web"
maxloop = 3
start_timeout_s = 30
defaultprim = false
directories = ["/srv/www"]

  [module.vip]
  address = "10.0.0.100/24"
  interface = { node1 = "eth0", node2 = "eth1" }

  [[module.checker]]
  name = "port"
  kind = "tcp"
  target = "127.0.0.1:8080"
  failures = 1
  action = "restart"

[[module]]
name = "db"
kind = "app"
preferred = "node2"
start = "start-db"
stop = "stop-db"
directories = ["/srv/db/{node}"]
"""


def mutate(old: str, new: str) -> str:
    assert BASE.count(old) == 1, f"test bug: {old!r} must occur once in BASE"
    return BASE.replace(old, new)


def test_valid_config_round_trip() -> None:
    cfg = parse_config(BASE)
    assert cfg.name == "demo" and cfg.version == 1
    assert cfg.secret == b"0123456789abcdef-secret"
    assert (cfg.pulse_s, cfg.timeout_s) == (0.5, 3.0)
    assert cfg.nodes["node2"].api == "127.0.0.2:7700"
    assert [h.name for h in cfg.heartbeat] == ["lan", "direct"]
    assert cfg.heartbeat[0].addresses == {"node1": "10.0.0.1", "node2": "10.0.0.2"}
    assert [h.port for h in cfg.heartbeat] == [7701, 7702]
    assert cfg.witness.configured and cfg.witness.interval_s == 1.0
    web = cfg.module("web")
    assert (web.start, web.stop, web.check, web.preferred) == ("start-web", "stop-web", "", "node1")
    assert web.vip is not None and web.vip.interface == {"node1": "eth0", "node2": "eth1"}
    assert web.directories == ("/srv/www",) and web.write_cache
    strict = parse_config(mutate("defaultprim = false", "defaultprim = false\nwrite_cache = false"))
    assert not strict.module("web").write_cache
    (checker,) = web.checkers
    assert checker.kind is CheckerKind.TCP and checker.action is CheckerAction.RESTART
    assert (checker.interval_s, checker.timeout_s) == (5.0, 2.0)
    db = cfg.module("db")
    assert (db.kind, db.preferred, db.start, db.vip, db.autostart) == (
        "app",
        "node2",
        "start-db",
        None,
        True,
    )
    assert cfg.source_text == BASE and cfg.source_path == ""
    paths = cfg.paths_for("node2")
    assert str(paths.cert) == "/etc/mp/node2.pem" and str(paths.data_dir) == "/tmp/mp/node2"


def test_example_file_parses() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.name == "demo" and len(cfg.heartbeat) == 2
    assert cfg.source_path == str(EXAMPLE) and cfg.source_text == EXAMPLE.read_text()
    assert {c.kind for c in cfg.module("web").checkers} == {
        CheckerKind.PROCESS,
        CheckerKind.TCP,
        CheckerKind.INTERFACE,
    }


def test_load_config_secret_file_relative_to_config(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("  a-secret-of-enough-length\n")
    text = mutate('secret = "0123456789abcdef-secret"', 'secret_file = "secret"')
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    cfg = load_config(path)
    assert cfg.secret == b"a-secret-of-enough-length"
    assert cfg.source_path == str(path)


def test_vip_interface_string_applies_to_both_nodes() -> None:
    cfg = parse_config(
        mutate('interface = { node1 = "eth0", node2 = "eth1" }', 'interface = "br0"')
    )
    vip = cfg.module("web").vip
    assert vip is not None and vip.interface == {"node1": "br0", "node2": "br0"}


CHECKER_END = 'action = "restart"'
INVALID = [
    # (id, old text, new text, expected key, fragments the message must contain)
    ("pulse-string", "pulse_ms = 500", 'pulse_ms = "fast"', "cluster.pulse_ms",
     ['"fast"', "between 50 and 10000"]),
    ("pulse-low", "pulse_ms = 500", "pulse_ms = 10", "cluster.pulse_ms", ["got 10"]),
    ("pulse-bool", "pulse_ms = 500", "pulse_ms = true", "cluster.pulse_ms", ["got true"]),
    ("timeout-short", "timeout_ms = 3000", "timeout_ms = 1000", "cluster.timeout_ms",
     ["3 * pulse_ms", "1500", "got 1000"]),
    ("timeout-long", "timeout_ms = 3000", "timeout_ms = 700000", "cluster.timeout_ms",
     ["600000"]),
    ("name-chars", 'name = "demo"', 'name = "my cluster!"', "cluster.name", ['"my cluster!"']),
    ("name-missing", 'name = "demo"\n', "", "cluster.name", ["is required"]),
    ("version-zero", 'name = "demo"', 'name = "demo"\nversion = 0', "cluster.version",
     [">= 1", "got 0"]),
    ("secret-missing", 'secret = "0123456789abcdef-secret"\n', "", "cluster.secret",
     ["required"]),
    ("secret-both", 'secret = "0123456789abcdef-secret"',
     'secret = "0123456789abcdef-secret"\nsecret_file = "/x"', "cluster.secret_file", ["either"]),
    ("secret-file-missing", 'secret = "0123456789abcdef-secret"',
     'secret_file = "/nonexistent/secret"', "cluster.secret_file", ["/nonexistent/secret"]),
    ("cluster-typo", "pulse_ms = 500", "pulse = 500", "cluster.pulse",
     ['unknown key "pulse"', 'did you mean "pulse_ms"']),
    ("top-typo", "[witness]", "[witnes]", "witnes", ["unknown key", "witness"]),
    ("tls-key-missing", 'key = "/etc/mp/{node}.key"\n', "", "tls.key", ["required"]),
    ("node3", "[nodes.node2]", "[nodes.node3]", "nodes.node3", ['unknown key "node3"']),
    ("api-no-port", 'api = "127.0.0.1:7700"', 'api = "127.0.0.1"', "nodes.node1.api",
     ['"127.0.0.1"', "host:port"]),
    ("api-port-0", 'api = "127.0.0.1:7700"', 'api = "127.0.0.1:0"', "nodes.node1.api",
     ["1..65535"]),
    ("api-port-big", 'api = "127.0.0.2:7700"', 'api = "127.0.0.2:70000"', "nodes.node2.api",
     ["70000"]),
    ("api-unknown-key", 'api = "127.0.0.2:7700"', 'api = "127.0.0.2:7700"\nport = 1',
     "nodes.node2.port", ["unknown key"]),
    ("hb-bad-ip", 'node1 = "10.0.0.1"', 'node1 = "10.0.0.300"', "heartbeat[0].node1",
     ['"10.0.0.300"', "IP address"]),
    ("hb-same-ip", 'node2 = "10.0.0.2"', 'node2 = "10.0.0.1"', "heartbeat[0].node2",
     ["other than"]),
    ("hb-dup-name", 'name = "direct"', 'name = "lan"', "heartbeat[1].name", ["duplicate"]),
    ("hb-port", "port = 7702", "port = 0", "heartbeat[1].port", ["between 1 and 65535"]),
    ("hb-same-socket", 'node1 = "192.168.1.1"\nnode2 = "192.168.1.2"\nport = 7702',
     'node1 = "10.0.0.1"\nnode2 = "192.168.1.2"', "heartbeat[1].port", ['"lan"', "10.0.0.1:7701"]),
    ("witness-ping", 'ping = ["10.0.0.254"]', 'ping = ["nope"]', "witness.ping[0]", ['"nope"']),
    ("witness-tcp", 'tcp = ["10.0.0.254:80"]', 'tcp = ["10.0.0.254"]', "witness.tcp[0]",
     ["host:port"]),
    ("module-kind", 'web"\nkind = "app"', 'web"\nkind = "container"', "module.web.kind",
     ['"container"', '"app", "vm"']),
    ("module-no-start", 'start = "start-web"\n', "", "module.web.start", ["required"]),
    ("vm-commands", 'kind = "app"\npreferred = "node2"', 'kind = "vm"\npreferred = "node2"',
     "module.db.start", ["not used by a vm module"]),
    ("app-domain", "maxloop = 3", 'maxloop = 3\ndomain = "web.xml"', "module.web.domain",
     ['only for kind = "vm"']),
    ("data-dir-relative", 'data_dir = "/tmp/mp/{node}"', 'data_dir = "mp/{node}"',
     "cluster.data_dir", ["absolute path", '"mp/{node}"']),
    ("api-same", 'api = "127.0.0.2:7700"', 'api = "127.0.0.1:7700"', "nodes.node2.api",
     ["127.0.0.1:7700 is already nodes.node1.api"]),
    ("repl-is-api", 'api = "127.0.0.1:7700"', 'api = "127.0.0.1:7702"',
     "nodes.node1.replication", ["127.0.0.1:7702 (the default: the api host, port 7702)",
                                 "already nodes.node1.api", "set nodes.node1.replication"]),
    ("repl-explicit", 'api = "127.0.0.2:7700"',
     'api = "127.0.0.2:7700"\nreplication = "127.0.0.2:7700"', "nodes.node2.replication",
     ["127.0.0.2:7700 is already nodes.node2.api"]),
    ("dir-root", 'directories = ["/srv/www"]', 'directories = ["/"]',
     "module.web.directories[0]", ["must not be /"]),
    ("dir-twice", 'directories = ["/srv/www"]', 'directories = ["/srv/www", "/srv/www/"]',
     "module.web.directories[1]", ["/srv/www is already module.web.directories[0]",
                                   "this module"]),
    ("dir-nested", 'directories = ["/srv/www"]', 'directories = ["/srv/www", "/srv/www/img"]',
     "module.web.directories[1]", ["/srv/www/img lies inside /srv/www", "nested"]),
    ("dir-shared", 'directories = ["/srv/db/{node}"]', 'directories = ["/srv/www"]',
     "module.db.directories[0]", ['already module.web.directories[0] (module "web")']),
    ("dir-around", 'directories = ["/srv/db/{node}"]', 'directories = ["/srv"]',
     "module.db.directories[0]", ["/srv/www lies inside /srv", 'module "web"']),
    ("dir-in-data-dir", 'directories = ["/srv/www"]', 'directories = ["/tmp/mp/{node}/x"]',
     "module.web.directories[0]", ["/tmp/mp/node1/x is inside cluster.data_dir"]),
    ("dir-around-data-dir", 'directories = ["/srv/www"]', 'directories = ["/tmp"]',
     "module.web.directories[0]", ["/tmp is around cluster.data_dir (/tmp/mp/node1 on node1)"]),
    ("vip-node-hb", 'address = "10.0.0.100/24"', 'address = "10.0.0.2/24"',
     "module.web.vip.address", ['node2\'s own address on heartbeat network "lan"']),
    ("vip-node-api", 'address = "10.0.0.100/24"', 'address = "127.0.0.1/8"',
     "module.web.vip.address", ["node1's own api address (nodes.node1.api)"]),
    ("module-preferred", 'preferred = "node2"', 'preferred = "node3"', "module.db.preferred",
     ['"node1", "node2"']),
    ("module-maxloop", "maxloop = 3", "maxloop = -1", "module.web.maxloop", [">= 0", "got -1"]),
    ("module-timeout", "start_timeout_s = 30", "start_timeout_s = 0", "module.web.start_timeout_s",
     ["> 0"]),
    ("module-dirs", 'directories = ["/srv/www"]', 'directories = ["srv"]',
     "module.web.directories[0]", ["absolute"]),
    ("module-bool", "defaultprim = false", 'defaultprim = "yes"', "module.web.defaultprim",
     ["true or false", '"yes"']),
    ("module-write-cache", "defaultprim = false", 'defaultprim = false\nwrite_cache = "off"',
     "module.web.write_cache", ["true or false", '"off"']),
    ("module-bad-name", 'name = "web"', 'name = "we b"', "module[0].name", ['"we b"']),
    ("module-dup-name", 'name = "db"', 'name = "web"', "module.web.name", ["duplicate"]),
    ("module-typo", "maxloop = 3", "max_loop = 3", "module.web.max_loop", ['"maxloop"']),
    ("vip-no-prefix", 'address = "10.0.0.100/24"', 'address = "10.0.0.100"',
     "module.web.vip.address", ["prefix length"]),
    ("vip-iface-missing", 'interface = { node1 = "eth0", node2 = "eth1" }',
     'interface = { node1 = "eth0" }', "module.web.vip.interface.node2", ["required"]),
    ("vip-iface-type", 'interface = { node1 = "eth0", node2 = "eth1" }', "interface = 5",
     "module.web.vip.interface", ["got 5"]),
    ("vip-dup", 'directories = ["/srv/db/{node}"]',
     'directories = ["/srv/db/{node}"]\n[module.vip]\naddress = "10.0.0.100/24"\n'
     'interface = "eth0"',
     "module.db.vip.address", ['"web"']),
    ("checker-kind", 'kind = "tcp"', 'kind = "http"', "module.web.checker.port.kind",
     ['"http"', '"process"']),
    ("checker-target", 'target = "127.0.0.1:8080"', 'target = "nohost"',
     "module.web.checker.port.target", ['"nohost"']),
    ("checker-failures", "failures = 1", "failures = 0", "module.web.checker.port.failures",
     [">= 1"]),
    ("checker-action", CHECKER_END, 'action = "explode"', "module.web.checker.port.action",
     ['"restart", "stopstart", "wait"']),
    ("checker-dup", CHECKER_END,
     CHECKER_END + '\n[[module.checker]]\nname = "port"\nkind = "ping"\ntarget = "10.0.0.9"',
     "module.web.checker.port.name", ["duplicate"]),
    ("checker-typo", CHECKER_END, CHECKER_END + '\ncolour = "red"',
     "module.web.checker.port.colour", ['unknown key "colour"']),
    ("checker-process-target", CHECKER_END,
     CHECKER_END + '\n[[module.checker]]\nname = "proc"\nkind = "process"\ntarget = "x"',
     "module.web.checker.proc.target", ["empty"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("old", "new", "key", "fragments"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_value_names_key(old: str, new: str, key: str, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(mutate(old, new))
    err = info.value
    assert err.key == key, str(err)
    assert f"config error at {key}:" in str(err)
    for fragment in fragments:
        assert fragment in str(err), str(err)


def test_short_secret_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(mutate('secret = "0123456789abcdef-secret"', 'secret = "hunter2"'))
    assert info.value.key == "cluster.secret"
    assert "at least 16" in str(info.value) and "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("heartbeat", "fragment"),
    [("", "at least one"), ('heartbeat = "lan"\n', "array of tables ([[heartbeat]]")],
)
def test_heartbeat_networks_required(heartbeat: str, fragment: str) -> None:
    text = heartbeat + BASE.split("[[heartbeat]]")[0] + "[witness]" + BASE.split("[witness]")[1]
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.key == "heartbeat" and fragment in str(info.value)


def test_malformed_toml_names_line_and_column() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(mutate("pulse_ms = 500", "pulse_ms = = 500"), source="/etc/mp/c.toml")
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.key, err.line) == ("", 4) and err.col is not None
    assert "malformed TOML at line 4, column" in str(err)
    assert str(err).startswith("/etc/mp/c.toml: ")


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file") as info:
        load_config(tmp_path / "missing.toml")
    assert str(tmp_path / "missing.toml") in str(info.value)
    bad = tmp_path / "bad.toml"
    bad.write_text(mutate("pulse_ms = 500", "pulse_ms = 5"))
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert str(info.value).startswith(f"{bad}: config error at cluster.pulse_ms:")


def test_replication_options_parse_and_are_checked() -> None:
    from node_agent.config.load import ConfigError, load_config

    cfg = load_config(EXAMPLE)
    web = cfg.modules[0]
    assert web.resync_mbps == 100 and web.async_mode == "sync"
    text = Path(EXAMPLE).read_text().replace('async = "sync"', 'async = "fast"')
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert err.value.key.endswith(".async") and "fast" in str(err.value)


def test_one_listener_address_spelled_two_ways_is_refused() -> None:
    text = mutate('api = "127.0.0.1:7700"', 'api = "[::1]:7700"')
    text = text.replace('api = "127.0.0.2:7700"', 'api = "[0:0::1]:7700"')
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.key == "nodes.node2.api"
    assert "::1:7700 is already nodes.node1.api" in str(info.value)


def test_checkers_run_where_their_kind_can_pass_unless_told() -> None:
    from node_agent.config.model import CheckerWhen

    cfg = load_config(EXAMPLE)
    runs = {c.name: c.runs for c in cfg.module("web").checkers}
    assert runs == {"process": CheckerWhen.PRIMARY, "port": CheckerWhen.PRIMARY,
                    "uplink": CheckerWhen.BOTH}  # fmt: skip
    extra = "".join(
        f'\n[[module.checker]]\nname = "{kind}"\nkind = "{kind}"\ntarget = "{target}"'
        for kind, target in (("ping", "10.0.0.9"), ("interface", "eth0"), ("command", "true"))
    )
    defaults = parse_config(mutate(CHECKER_END, CHECKER_END + extra)).module("web").checkers
    assert [(c.name, c.runs.value) for c in defaults] == [
        ("port", "primary"),
        ("ping", "both"),
        ("interface", "both"),
        ("command", "primary"),
    ]
    told = parse_config(mutate(CHECKER_END, CHECKER_END + '\nwhen = "both"')).module("web")
    assert told.checkers[0].runs is CheckerWhen.BOTH


@pytest.mark.parametrize(
    ("checker", "fragments"),
    [
        ('kind = "tcp"\ntarget = "127.0.0.1:1"\nwhen = "secondary"', ['"primary", "both"']),
        ('kind = "process"\nwhen = "both"', ['"primary" for a "process" checker']),
    ],
)
def test_checker_when_is_checked(checker: str, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(mutate(CHECKER_END, CHECKER_END + '\n[[module.checker]]\nname = "x"\n'
                            + checker))  # fmt: skip
    assert info.value.key == "module.web.checker.x.when"
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


VM = """
[[module]]
name = "vms"
kind = "vm"
directories = ["/srv/vms"]
"""


def test_a_vm_module_names_its_domain_in_its_directory() -> None:
    vm = parse_config(BASE + VM).module("vms").vm
    assert vm is not None and vm.domain == "/srv/vms/vms.xml"
    assert (vm.uri, vm.guest_agent) == ("qemu:///system", False)
    told = parse_config(BASE + VM + 'domain = "def/recorder.xml"\nguest_agent = true\n'
                        'libvirt_uri = "qemu+ssh://x/system"')  # fmt: skip
    vm = told.module("vms").vm
    assert vm is not None and vm.domain == "/srv/vms/def/recorder.xml" and vm.guest_agent
    # A VM's NVRAM is written without flushes: no writeback cache unless asked for.
    assert not parse_config(BASE + VM).module("vms").write_cache
    assert parse_config(BASE + VM + "write_cache = true").module("vms").write_cache


@pytest.mark.parametrize(
    ("extra", "key", "fragment"),
    [
        ('domain = "../elsewhere.xml"', "module.vms.domain", "outside the module's directories"),
        ('domain = "/etc/libvirt/qemu/vms.xml"', "module.vms.domain", "outside"),
        ('check = "virsh domstate vms"', "module.vms.check", "not used by a vm module"),
    ],
)
def test_a_vm_definition_must_be_replicated(extra: str, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + VM + extra)
    assert info.value.key == key and fragment in str(info.value), str(info.value)


def test_a_vm_needs_its_directory() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + VM.replace('directories = ["/srv/vms"]\n', ""))
    assert info.value.key == "module.vms.directories" and "needs its directory" in str(info.value)


def test_without_tls_and_data_dir_the_state_dir_holds_both() -> None:
    """A configuration written by the console names neither: the certificates pairing
    installed and the data live in the agent's state directory."""
    text = mutate('data_dir = "/tmp/mp/{node}"\n', "")
    start, end = text.index("[tls]"), text.index("[nodes.node1]")
    text = text[:start] + text[end:]
    cfg = parse_config(text, state_dir="/srv/mp-state")
    paths = cfg.paths_for("node2")
    assert str(paths.data_dir) == "/srv/mp-state/data"
    assert (str(paths.ca), str(paths.cert), str(paths.key)) == (
        "/srv/mp-state/tls/ca.pem", "/srv/mp-state/tls/node.pem", "/srv/mp-state/tls/node.key",
    )  # fmt: skip
    assert str(parse_config(text).paths_for("node1").data_dir) == "/var/lib/mirrorpair/data"


# -- [alerts] (docs/alerts.md) -------------------------------------------------------------
ALERTS = """
[alerts]
events = ["failover", "restored"]
settle_s = 5

[alerts.hook]
command = ["/usr/local/bin/page", "--team", "ops"]
timeout_s = 3

[alerts.email]
host = "smtp.example.com"
security = "ssl"
user = "mp"
password_file = "/etc/mirrorpair/smtp-password"
from = "mp@example.com"
to = ["ops@example.com", "oncall@example.com"]
"""


def _example_alerts() -> str:
    """The example file's commented [alerts] block, uncommented as a user would."""
    text = EXAMPLE.read_text()
    start = text.index("# [alerts]")
    block = text[start : text.index("\n\n", start)]
    return "\n".join(line.removeprefix("# ") for line in block.splitlines()) + "\n"


def test_alerts_section_parses_and_defaults() -> None:
    assert not parse_config(BASE).alerts.enabled
    a = parse_config(BASE + ALERTS).alerts
    assert a.events == ("failover", "restored") and a.settle_s == 5.0 and a.enabled
    assert a.batch_s == 5.0  # the default
    assert parse_config(BASE + ALERTS.replace("settle_s = 5", "batch_s = 0")).alerts.batch_s == 0
    assert a.hook is not None and a.hook.command == ("/usr/local/bin/page", "--team", "ops")
    assert a.hook.timeout_s == 3.0
    e = a.email
    assert e is not None and (e.host, e.security, e.smtp_port, e.user) == (
        "smtp.example.com", "ssl", 465, "mp")  # fmt: skip
    assert e.sender == "mp@example.com" and e.to == ("ops@example.com", "oncall@example.com")


def test_a_password_may_go_in_clear_only_to_a_relay_on_this_server() -> None:
    text = (BASE + ALERTS).replace('security = "ssl"', 'security = "none"')
    local = parse_config(text.replace('"smtp.example.com"', '"127.0.0.1"')).alerts.email
    assert local is not None and local.security == "none" and local.user == "mp"


def test_the_example_alerts_block_is_valid_once_uncommented() -> None:
    a = parse_config(BASE + _example_alerts()).alerts
    assert a.hook is not None and a.email is not None
    assert a.email.smtp_port == 587 and a.email.password_file == "/etc/mirrorpair/smtp-password"
    assert set(a.events) == {"failover", "degraded", "split-brain", "restored"}


ALERTS_INVALID = [
    ("events", 'events = ["failover", "restored"]', 'events = ["fire"]', "alerts.events[0]",
     ['"failover", "degraded", "split-brain", "restored"', '"fire"']),
    ("settle", "settle_s = 5", "settle_s = 0", "alerts.settle_s", ["> 0"]),
    ("typo", "settle_s = 5", "settle = 5", "alerts.settle", ['did you mean "settle_s"']),
    ("batch-negative", "settle_s = 5", "settle_s = 5\nbatch_s = -1", "alerts.batch_s",
     [">= 0", "<= 300", "0: every alert"]),
    ("batch-text", "settle_s = 5", 'settle_s = 5\nbatch_s = "10s"', "alerts.batch_s",
     [">= 0", '"10s"']),
    ("batch-long", "settle_s = 5", "settle_s = 5\nbatch_s = 3600", "alerts.batch_s", ["<= 300"]),
    ("hook-shell-string", 'command = ["/usr/local/bin/page", "--team", "ops"]',
     'command = "page --team ops"', "alerts.hook.command", ["array of strings", "without a shell"]),
    ("hook-empty", 'command = ["/usr/local/bin/page", "--team", "ops"]', "command = []",
     "alerts.hook.command", ["array of strings"]),
    ("hook-timeout", "timeout_s = 3\n\n[alerts.email]", "timeout_s = 9999\n[alerts.email]",
     "alerts.hook.timeout_s", ["<= 600"]),
    ("security", 'security = "ssl"', 'security = "tls"', "alerts.email.security",
     ['"starttls", "ssl", "none"']),
    ("port", 'security = "ssl"', "port = 0", "alerts.email.port", ["between 1 and 65535"]),
    ("to", 'to = ["ops@example.com", "oncall@example.com"]', "to = []", "alerts.email.to",
     ["at least one"]),
    ("to-address", 'to = ["ops@example.com", "oncall@example.com"]', 'to = ["ops"]',
     "alerts.email.to[0]", ["e-mail address"]),
    ("from", 'from = "mp@example.com"', 'from = "nobody"', "alerts.email.from",
     ["e-mail address"]),
    ("host", 'host = "smtp.example.com"', 'host = "smtp example"', "alerts.email.host",
     ["host name"]),
    ("password-in-toml", 'password_file = "/etc/mirrorpair/smtp-password"', 'password = "x"',
     "alerts.email.password", ['unknown key "password"']),
    ("password-relative", 'password_file = "/etc/mirrorpair/smtp-password"',
     'password_file = "smtp-password"', "alerts.email.password_file", ["absolute path"]),
    ("user-without-password", 'password_file = "/etc/mirrorpair/smtp-password"', "",
     "alerts.email.password_file", ['required with user = "mp"']),
    ("password-without-user", 'user = "mp"', "", "alerts.email.user", ["required"]),
    ("password-in-clear", 'security = "ssl"', 'security = "none"', "alerts.email.security",
     ["password in clear to smtp.example.com", "starttls or ssl"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("old", "new", "key", "fragments"),
    [c[1:] for c in ALERTS_INVALID],
    ids=[c[0] for c in ALERTS_INVALID],
)
def test_invalid_alerts_value_names_key(old: str, new: str, key: str, fragments: list[str]) -> None:
    text = BASE + ALERTS
    assert text.count(old) == 1, old
    with pytest.raises(ConfigError) as info:
        parse_config(text.replace(old, new, 1))
    assert info.value.key == key, str(info.value)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)
