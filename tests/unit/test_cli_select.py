"""Routing of CLI commands to nodes, and finding which node this machine is."""

from __future__ import annotations

import pytest

from node_agent.cli.select import (
    SelectionError,
    api_host,
    detect_local_node,
    is_local_address,
    local_node,
    plan_targets,
)
from node_agent.config.load import parse_config
from protos import mirrorpair_pb2 as pb

STOP, WAIT, ALONE, PRIM, SECOND = (
    pb.STATE_STOP,
    pb.STATE_WAIT,
    pb.STATE_ALONE,
    pb.STATE_PRIM,
    pb.STATE_SECOND,
)


def states(node1: int | None, node2: int | None) -> dict[str, int | None]:
    return {"node1": node1, "node2": node2}


@pytest.mark.parametrize("command", ["start", "stop", "swap", "prim", "second", "forcestop"])
def test_explicit_node_always_wins(command: str) -> None:
    assert plan_targets(command, "web", "node2", states(PRIM, SECOND)) == ["node2"]


@pytest.mark.parametrize("command", ["prim", "second", "forcestop"])
def test_one_node_commands_need_node(command: str) -> None:
    with pytest.raises(SelectionError, match="give --node"):
        plan_targets(command, "web", None, states(PRIM, SECOND))


def test_start_goes_to_every_stopped_or_unknown_node() -> None:
    assert plan_targets("start", "web", None, states(STOP, STOP)) == ["node1", "node2"]
    assert plan_targets("start", "web", None, states(PRIM, STOP)) == ["node2"]
    assert plan_targets("start", "web", None, states(None, STOP)) == ["node1", "node2"]
    assert plan_targets("start", "web", None, states(PRIM, SECOND)) == []


@pytest.mark.parametrize(
    ("node1", "node2", "expected"),
    [
        (PRIM, SECOND, ["node2", "node1"]),  # secondary first
        (SECOND, PRIM, ["node1", "node2"]),
        (ALONE, WAIT, ["node2", "node1"]),
        (ALONE, STOP, ["node1"]),
        (STOP, STOP, []),
        (PRIM, None, ["node2", "node1"]),  # unreachable: reported first, primary last
        (WAIT, WAIT, ["node1", "node2"]),
    ],
)
def test_stop_non_primary_first(node1: int | None, node2: int | None, expected: list) -> None:
    assert plan_targets("stop", "web", None, states(node1, node2)) == expected


@pytest.mark.parametrize("command", ["restart", "stopstart", "swap", "migrate"])
def test_primary_commands_go_to_the_primary(command: str) -> None:
    assert plan_targets(command, "web", None, states(SECOND, PRIM)) == ["node2"]
    assert plan_targets(command, "web", None, states(ALONE, None)) == ["node1"]


def test_primary_commands_without_a_single_primary_explain() -> None:
    with pytest.raises(SelectionError, match=r"no primary node right now \(node1 STOP, node2 "):
        plan_targets("swap", "web", None, states(STOP, None))
    with pytest.raises(SelectionError, match="primary on both nodes"):
        plan_targets("swap", "web", None, states(ALONE, ALONE))


def test_api_host() -> None:
    assert api_host("10.0.0.1:7700") == "10.0.0.1"
    assert api_host("[fd00::1]:7700") == "fd00::1"
    assert api_host("node-a.example:7700") == "node-a.example"


CONFIG = """
[cluster]
name = "c"
secret = "0123456789abcdef-secret"
data_dir = "/tmp/x/{node}"
[tls]
ca = "/etc/ca.pem"
cert = "/etc/{node}.pem"
key = "/etc/{node}.key"
[nodes.node1]
api = "10.0.0.1:7700"
[nodes.node2]
api = "10.0.0.2:7700"
[[heartbeat]]
name = "lan"
node1 = "10.0.0.1"
node2 = "10.0.0.2"
"""


def test_detect_local_node() -> None:
    config = parse_config(CONFIG)
    assert detect_local_node(config, lambda host: host == "10.0.0.2") == "node2"
    with pytest.raises(SelectionError, match="neither node"):
        detect_local_node(config, lambda host: False)
    with pytest.raises(SelectionError, match="both nodes"):
        detect_local_node(config, lambda host: True)


def test_is_local_address() -> None:
    assert is_local_address("127.0.0.1")
    assert is_local_address("127.0.0.2")  # all of 127/8 is local on Linux
    assert not is_local_address("192.0.2.77")  # TEST-NET-1: never ours
    assert not is_local_address("no-such-host.invalid")


def test_local_node_given_env_or_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse_config(CONFIG)
    monkeypatch.delenv("MIRRORPAIR_NODE", raising=False)
    assert local_node(config, "node2", lambda host: False) == "node2"
    assert local_node(config, None, lambda host: host == "10.0.0.1") == "node1"
    monkeypatch.setenv("MIRRORPAIR_NODE", "node2")
    assert local_node(config, None, lambda host: host == "10.0.0.1") == "node2"
    monkeypatch.setenv("MIRRORPAIR_NODE", "node9")
    with pytest.raises(SelectionError, match="node9"):
        local_node(config)
