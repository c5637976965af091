"""What the server installer prints at its end (node_agent/host/install_summary.py): the
firewall ports from the configuration or the defaults, and the pairing code of a server
not set up yet, kept across runs."""

from __future__ import annotations

import json
from pathlib import Path

from node_agent.config.load import parse_config
from node_agent.host.install_summary import firewall_ports, main, pairing_lines, render_ports
from node_agent.host.state import StateDir, fingerprint
from tests.unit.metrics_example import example_with_metrics

EXAMPLE = Path(__file__).resolve().parents[2] / "resources" / "config" / "cluster.example.toml"

TWO_PORTS = """\
[cluster]
name = "site"
secret = "0123456789abcdef-secret"
data_dir = "/tmp/mp/{node}"

[nodes.node1]
api = "10.0.0.1:7800"

[nodes.node2]
api = "10.0.0.2:7900"
replication = "10.0.0.2:7901"

[[heartbeat]]
name = "lan"
node1 = "10.0.0.1"
node2 = "10.0.0.2"
port = 7811
"""


def ports(entries) -> set[tuple[int, str]]:
    return {(p.port, p.protocol) for p in entries}


def test_without_configuration_the_defaults_an_agent_listens_on() -> None:
    got = firewall_ports(None)
    assert ports(got) == {(7700, "tcp"), (7702, "tcp"), (7701, "udp"), (5353, "udp")}


def test_the_example_configuration_gives_one_line_per_port_naming_each_network() -> None:
    config = parse_config(EXAMPLE.read_text(), str(EXAMPLE))
    got = firewall_ports(config, "node1")
    assert ports(got) == {(7700, "tcp"), (7702, "tcp"), (7701, "udp"), (5353, "udp")}
    (heartbeat,) = [p for p in got if p.protocol == "udp" and p.port == 7701]
    # Both networks use port 7701: one line, both named with node1's address on each.
    assert "lan (10.0.0.1)" in heartbeat.what and "direct (192.168.100.1)" in heartbeat.what
    lines = render_ports(got)
    assert len(lines) == 4 and any(line.strip().startswith("7702/tcp") for line in lines)


def test_this_nodes_ports_only_when_the_node_is_known() -> None:
    config = parse_config(TWO_PORTS)
    node2 = firewall_ports(config, "node2")
    assert ports(node2) == {(7900, "tcp"), (7901, "tcp"), (7811, "udp"), (5353, "udp")}
    node1 = firewall_ports(config, "node1")  # replication defaults to the api host, 7702
    assert ports(node1) == {(7800, "tcp"), (7702, "tcp"), (7811, "udp"), (5353, "udp")}
    both = firewall_ports(config, "")
    assert ports(both) == ports(node1) | ports(node2)
    (api2,) = [p for p in both if p.port == 7900]
    assert "(node2)" in api2.what  # which node listens there, since both are listed


def test_a_new_server_gets_a_code_and_a_second_run_prints_the_same(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    first = pairing_lines(state, configured=False)
    code = state.code()
    assert code is not None and f"pairing code: {code}" in first
    fp = fingerprint(state.pairing_cert.read_bytes())
    assert f"certificate fingerprint: {fp}" in first
    before = {p: p.read_bytes() for p in state.root.rglob("*") if p.is_file()}
    assert pairing_lines(state, configured=False) == first
    assert {p: p.read_bytes() for p in state.root.rglob("*") if p.is_file()} == before


def test_a_server_set_up_gets_no_code(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "configured")
    (line,) = pairing_lines(state, configured=True)
    assert "already set up" in line and state.code() is None
    assert not state.root.exists()  # nothing written
    paired = StateDir(tmp_path / "paired")
    paired.root.mkdir()
    paired.paired_file.write_text(json.dumps({"cluster": "site", "node_id": "node2"}))
    (line,) = pairing_lines(paired, configured=False)
    assert "paired as node2 of cluster 'site'" in line and paired.code() is None


def test_an_invalid_configuration_is_named_and_the_defaults_listed(tmp_path, capsys) -> None:
    config = tmp_path / "cluster.toml"
    config.write_text(TWO_PORTS.replace("port = 7811", 'port = "x"'))
    assert main(["--config", str(config), "--state-dir", str(tmp_path / "state")]) == 0
    out = capsys.readouterr().out
    assert "heartbeat[0].port" in out and "these are the defaults" in out
    assert "7700/tcp" in out and "already set up" in out  # a configuration exists: no code


def test_the_metrics_port_is_listed_when_configured() -> None:
    got = firewall_ports(parse_config(example_with_metrics()), "node1")
    assert (9780, "tcp") in ports(got)
    (metrics,) = [p for p in got if p.port == 9780]
    assert "monitoring" in metrics.source and "metrics" in metrics.what
