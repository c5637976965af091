"""The setup flow without Qt, first pages: page order, finding servers (discovered and
typed, unreachable, already paired), pairing (codes, wrong codes, cool-down), heartbeat
networks and the witness. The in-memory backend stands in for the two servers."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any, TypeVar

import pytest

from console.setup.flow import EDIT_PAGES, NEW_PAGES, Page, SetupFlow
from console.setup.plan import NetworkPlan, Problem, blocking, normalise_code, with_default_port
from tests.console.setup_fake import CODES, A, B, FakeBackend, server, two_servers

T = TypeVar("T")


def run(c: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(c)


def fields(problems: list[Problem]) -> list[str]:
    return [p.field for p in problems]


def text(problems: list[Problem]) -> str:
    return "\n".join(str(p) for p in problems)


def found_flow(backend: FakeBackend | None = None, name: str = "site-a") -> SetupFlow:
    backend = backend or two_servers()
    flow = SetupFlow()
    run(flow.discover(backend))
    flow.cluster_name = name
    return flow


def paired_flow(backend: FakeBackend) -> SetupFlow:
    flow = found_flow(backend)
    flow.enter(Page.PAIR)
    flow.codes = {"node1": CODES[A], "node2": CODES[B]}
    assert not blocking(run(flow.validate(backend)))
    flow.enter(Page.NETWORKS)
    return flow


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ----- page order -------------------------------------------------------------------------
def test_page_order_new_and_edit() -> None:
    flow = SetupFlow()
    assert flow.pages() == NEW_PAGES
    assert [p.value for p in NEW_PAGES] == [
        "find", "pair", "networks", "witness", "modules", "vip", "review", "apply",
    ]  # fmt: skip
    assert flow.page is Page.FIND and flow.previous_page() is None
    assert flow.next_page() is Page.PAIR and flow.next_page(Page.REVIEW) is Page.APPLY
    assert flow.next_page(Page.APPLY) is None
    assert EDIT_PAGES[0] is Page.NETWORKS and Page.FIND not in EDIT_PAGES


def test_go_next_stays_while_the_page_has_problems() -> None:
    flow = SetupFlow()
    assert not flow.can_advance()
    assert flow.go_next() is Page.FIND
    backend = two_servers()
    run(flow.discover(backend))
    flow.cluster_name = "site-a"
    assert flow.can_advance()
    assert flow.go_next() is Page.PAIR
    assert flow.go_back() is Page.FIND


# ----- find servers -----------------------------------------------------------------------
def test_discovery_chooses_the_first_two_in_order() -> None:
    flow = found_flow()
    assert [s.hostname for s in flow.servers] == ["srv-a", "srv-b"]
    assert flow.chosen == {"node1": A, "node2": B}
    assert flow.check(Page.FIND) == []


def test_swap_nodes_and_user_choice() -> None:
    flow = found_flow()
    flow.swap_nodes()
    assert flow.chosen == {"node1": B, "node2": A}
    flow.choose(A, "node1")  # taken from node2, given to node1
    assert flow.chosen == {"node1": A}
    assert "servers" in fields(flow.check(Page.FIND))
    flow.choose(B)
    assert flow.chosen == {"node1": A, "node2": B}
    flow.choose("10.0.0.9:7700")  # no node free: nothing changes
    assert flow.chosen == {"node1": A, "node2": B}


def test_cluster_name_is_checked() -> None:
    flow = found_flow(name="")
    assert fields(flow.check(Page.FIND)) == ["cluster name"]
    flow.cluster_name = "bad name!"
    assert "A-Z a-z 0-9 _ . -" in text(flow.check(Page.FIND))
    flow.cluster_name = "x" * 65
    assert not flow.can_advance(Page.FIND)
    flow.cluster_name = "hq_site-1.a"
    assert flow.can_advance(Page.FIND)


def test_exactly_two_servers() -> None:
    backend = two_servers()
    backend.discovered = [A]
    flow = found_flow(backend)
    problems = flow.check(Page.FIND)
    assert fields(problems) == ["servers"] and "1 found" in problems[0].message
    assert not flow.can_advance(Page.FIND)


def test_typed_address_reached_and_chosen() -> None:
    backend = two_servers()
    backend.discovered = [A]
    flow = found_flow(backend)
    s = run(flow.reach(backend, "192.168.1.12"))  # the agent's port is added
    assert s is not None and s.source == "typed" and s.address == B
    assert flow.chosen == {"node1": A, "node2": B}
    assert flow.check(Page.FIND) == []


def test_unreachable_typed_address_shows_its_error() -> None:
    backend = two_servers()
    backend.discovered = [A]
    backend.unreachable["10.9.9.9:7700"] = "no route to host"
    flow = found_flow(backend)
    assert run(flow.reach(backend, " 10.9.9.9:7700 ")) is None
    problems = flow.check(Page.FIND)
    assert "address 10.9.9.9:7700" in fields(problems)
    assert "no route to host" in text(problems)
    assert not flow.can_advance(Page.FIND)  # still only one server
    run(flow.reach(backend, B))
    assert flow.can_advance(Page.FIND)  # the old error stays shown, as a warning


def test_same_server_twice_is_refused() -> None:
    backend = two_servers()
    backend.servers[B] = replace(backend.servers[B], fingerprint=backend.servers[A].fingerprint)
    flow = found_flow(backend)
    assert "same server" in text(flow.check(Page.FIND))


def test_server_paired_to_another_cluster() -> None:
    backend = two_servers()
    backend.servers[B] = replace(backend.servers[B], paired=True, pairing_open=False,
                                 cluster_name="other")  # fmt: skip
    flow = SetupFlow()
    run(flow.discover(backend))
    assert flow.chosen == {"node1": A}  # not chosen by default
    flow.cluster_name = "site-a"
    flow.choose(B)
    problems = blocking(flow.check(Page.FIND))
    assert fields(problems) == ["node2 (srv-b)"]
    assert 'paired to cluster "other"' in problems[0].message
    assert "pairing open" in problems[0].message
    backend.servers[B] = replace(backend.servers[B], pairing_open=True)  # reopened
    run(flow.discover(backend))
    assert flow.can_advance(Page.FIND)
    assert [p.warning for p in flow.check(Page.FIND)] == [True]


def test_discovery_failure_is_shown() -> None:
    class Broken(FakeBackend):
        async def discover(self, seconds: float) -> list[Any]:
            from console.setup.backend import SetupError

            raise SetupError("mDNS is not available here: type the addresses")

    flow = SetupFlow()
    assert run(flow.discover(Broken())) == []
    assert "mDNS is not available" in text(flow.check(Page.FIND))


def test_default_port() -> None:
    assert with_default_port("srv-a") == "srv-a:7700"
    assert with_default_port("10.0.0.1:7800") == "10.0.0.1:7800"
    assert with_default_port("fd00::1") == "[fd00::1]:7700"


# ----- pair -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "typed", ["7KQ2-M9XD-4HTA", " 7kq2-m9xd-4hta ", "7KQ2M9XD4HTA", "7kq2 m9xd 4hta"]
)
def test_code_forms_are_normalised(typed: str) -> None:
    assert normalise_code(typed) == "7KQ2-M9XD-4HTA"


@pytest.mark.parametrize("typed", ["", "7KQ2-M9XD", "7KQ2-M9XD-4HT!", "7KQ2-M9XD-4HTA-1"])
def test_bad_code_forms(typed: str) -> None:
    assert normalise_code(typed) is None


def test_pair_both_with_codes_typed_loosely() -> None:
    backend = two_servers()
    flow = found_flow(backend)
    flow.enter(Page.PAIR)
    assert fields(flow.check()) == ["node1 code", "node2 code"]
    flow.codes = {"node1": "7kq2m9xd4hta", "node2": "p3zr 8wce 2jnl"}
    assert "Next pairs it" in text(flow.check())
    assert run(flow.validate(backend)) == []
    assert set(flow.hosts) == {"node1", "node2"}
    assert flow.hosts["node2"].node_id == "node2" and flow.hosts["node2"].hostname == "srv-b"
    assert flow.codes["node1"] == "7KQ2-M9XD-4HTA"
    # the cluster's name travels with the server to pair (BeginPairing's cluster_name)
    assert f"pair node1 {A} site-a" in backend.calls
    assert flow.can_advance()


def test_bad_code_form_is_not_sent() -> None:
    backend = two_servers()
    flow = found_flow(backend)
    flow.codes = {"node1": "12345", "node2": CODES[B]}
    problems = run(flow.validate(backend, Page.PAIR))
    assert "node1 code" in fields(problems) and "like 7KQ2-M9XD-4HTA" in text(problems)
    assert not any(c.startswith("pair node1") for c in backend.calls)
    assert "node2" in flow.hosts


def test_wrong_code_shows_attempts_left_then_cooldown() -> None:
    backend = two_servers()
    clock = Clock()
    flow = SetupFlow(clock=clock)
    run(flow.discover(backend))
    flow.cluster_name = "site-a"
    flow.codes = {"node1": "AAAA-BBBB-CCCC", "node2": CODES[B]}
    assert run(flow.pair(backend, "node1")) is None
    assert flow.attempts_left["node1"] == 2
    assert "2 attempts left" in text(flow.check(Page.PAIR))
    run(flow.pair(backend, "node1"))
    assert "1 attempt left" in text(flow.check(Page.PAIR))
    run(flow.pair(backend, "node1"))
    problems = flow.check(Page.PAIR)
    assert "try again in 60 s" in text(problems)
    assert flow.cooldown_left("node1") == 60
    # during the cool-down nothing is sent, even with the right code
    flow.codes["node1"] = CODES[A]
    sent = len(backend.calls)
    assert run(flow.pair(backend, "node1")) is None
    assert len(backend.calls) == sent and "try again in 60 s" in flow.pair_errors["node1"]
    clock.now += 30
    run(flow.pair(backend, "node1"))
    assert "try again in 30 s" in flow.pair_errors["node1"]
    clock.now += 31
    backend.attempts[A] = 3  # the server's cool-down ended too
    assert run(flow.pair(backend, "node1")) is not None
    assert "node1" not in flow.pair_errors and fields(flow.check(Page.PAIR)) == ["node2"]


def test_pairing_closed_says_how_to_reopen() -> None:
    backend = two_servers()
    backend.attempts[A] = 0
    backend.cooldown_s = 0
    flow = found_flow(backend)
    flow.codes["node1"] = CODES[A]
    run(flow.pair(backend, "node1"))
    assert "mirrorpair-agent pairing open" in flow.pair_errors["node1"]


def test_choosing_another_server_forgets_the_pairing() -> None:
    backend = two_servers()
    backend.servers["192.168.1.13:7700"] = server("192.168.1.13:7700", "srv-c")
    flow = paired_flow(backend)
    assert flow.networks
    flow.choose("192.168.1.13:7700", "node2")
    assert "node2" not in flow.hosts and flow.networks == []
    assert "node2 code" in fields(flow.check(Page.PAIR))


def test_version_follows_what_the_servers_run() -> None:
    backend = two_servers()
    backend.hosts[B] = replace(backend.hosts[B], config_version=4)
    flow = paired_flow(backend)
    assert flow.version == 5
    assert flow.expected_versions() == {"node1": 0, "node2": 4}


# ----- heartbeat networks -----------------------------------------------------------------
def test_networks_proposed_from_shared_subnets() -> None:
    flow = paired_flow(two_servers())
    assert [(n.name, n.addresses) for n in flow.networks] == [
        ("eth0-eno1", {"node1": "192.168.1.11", "node2": "192.168.1.12"}),
        ("eth1", {"node1": "10.10.0.1", "node2": "10.10.0.2"}),
    ]
    assert flow.check() == []


def test_one_network_is_a_warning_none_is_refused() -> None:
    flow = paired_flow(two_servers())
    flow.networks[1].use = False
    problems = flow.check()
    assert [p.warning for p in problems] == [True]
    assert "two or more" in problems[0].message and flow.can_advance()
    flow.networks[0].use = False
    assert fields(flow.check()) == ["heartbeat networks"] and not flow.can_advance()


def test_network_addresses_must_belong_to_the_node_and_share_a_subnet() -> None:
    flow = paired_flow(two_servers())
    flow.networks[0].addresses["node1"] = "192.168.1.99"
    problems = flow.check()
    assert fields(problems) == ["network eth0-eno1 node1"]
    assert "not an address of node1 (srv-a)" in problems[0].message
    assert "192.168.1.11" in problems[0].message  # what it has
    flow.networks[0].addresses["node1"] = "10.10.0.1"
    flow.networks[1].use = False
    assert "not in one subnet" in text(flow.check())
    flow.networks[0].addresses["node1"] = "not-an-ip"
    assert "must be an IP address" in text(flow.check())


def test_loopback_is_not_a_network_address() -> None:
    flow = paired_flow(two_servers())
    flow.networks[0].addresses = {"node1": "127.0.0.1", "node2": "192.168.1.12"}
    assert "not an address of node1" in text(flow.check())


def test_network_names_and_ports() -> None:
    flow = paired_flow(two_servers())
    flow.networks[1].name = flow.networks[0].name
    assert "used twice" in text(flow.check())
    flow.networks[1].name = "bad name"
    assert "A-Z a-z 0-9" in text(flow.check())
    flow.networks[1].name = "direct"
    flow.networks[1].port = 70000
    assert fields(flow.check()) == ["network direct port"]


def test_one_address_and_port_in_two_networks() -> None:
    flow = paired_flow(two_servers())
    flow.networks.append(NetworkPlan("again", dict(flow.networks[1].addresses)))
    assert 'already used by network "eth1"' in text(flow.check())
    flow.networks[2].port = 7711
    assert flow.check() == []


def test_networks_are_kept_when_going_back_and_forth() -> None:
    flow = paired_flow(two_servers())
    flow.networks[0].name = "lan"
    flow.enter(Page.WITNESS)
    flow.enter(Page.NETWORKS)
    assert flow.networks[0].name == "lan"


# ----- witness ----------------------------------------------------------------------------
def test_witness_is_optional_and_checked() -> None:
    flow = paired_flow(two_servers())
    flow.enter(Page.WITNESS)
    assert flow.check() == []
    flow.witness.ping = ["192.168.1.254", "gateway"]
    flow.witness.tcp = ["192.168.1.254:80", "192.168.1.254", "[fd00::1]:443"]
    problems = flow.check()
    assert fields(problems) == ["witness ping 'gateway'", "witness tcp '192.168.1.254'"]
    flow.witness.ping = ["192.168.1.254", "192.168.1.254"]
    flow.witness.tcp = []
    assert "listed twice" in text(flow.check())
