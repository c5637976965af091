"""The example config's checkers on a real two-server site (issue 10, point 4): a probe of
the application runs only where the application runs, so the secondary stays Ready and
takes over when the primary dies."""

from __future__ import annotations

import time

import pytest

from tests.integration.site import Site

pytestmark = pytest.mark.root


def checkers(site: Site, node: str) -> dict[str, dict]:
    m = site.module(node)
    assert m is not None, f"{node} does not answer"
    return {c["name"]: c for c in m["checkers"]}


def test_the_example_checkers_let_a_real_secondary_take_over(site: Site) -> None:
    site.start()
    site.wait_pair("node1", timeout=40)
    assert site.mounted("node1") and not site.mounted("node2")
    # The tcp probe (127.0.0.1:80, failures = 2, every 5 s) would fail on the secondary,
    # where nothing listens: watch the secondary over two of its intervals.
    deadline = time.monotonic() + 2 * 5.0 + 1.0
    while time.monotonic() < deadline:
        assert site.state("node2") == ("SECOND", "READY"), site.tail("node2")
        time.sleep(0.25)
    on2 = checkers(site, "node2")
    assert {n: (c["when"], c["active"]) for n, c in on2.items()} == {
        "process": ("primary", False),
        "port": ("primary", False),
        "uplink": ("both", True),
    }
    assert all(c["ok"] and int(c["consecutive_failures"]) == 0 for c in on2.values()), on2
    on1 = checkers(site, "node1")
    assert all(c["active"] and c["ok"] for c in on1.values()), on1

    site.power_off("node1")
    site.wait_state("node2", "ALONE", "READY", timeout=20)
    site.wait_for(lambda: site.http() == "node2\n", "the VIP answering from node2", 15)
    assert site.mounted("node2")
    site.wait_for(lambda: all(c["active"] and c["ok"] for c in checkers(site, "node2").values()),
                  "node2's checkers probing its own application", 15)  # fmt: skip
