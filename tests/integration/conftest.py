"""Fixtures for integration tests (network namespaces; see tests/integration/netns.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import require_binary, require_root
from tests.integration.netns import Topology, cleanup_stale


@pytest.fixture(scope="session")
def netns_session() -> None:
    """Once per session, before the first topology: delete namespaces of crashed runs."""
    require_root()
    require_binary("ip")
    cleanup_stale()


@pytest.fixture
def topology(netns_session: None) -> Iterator[Topology]:
    """A fresh node1/node2/client/switch topology, torn down after the test.

    Skips without root or `ip` -- and FAILS instead under CI=true.
    """
    require_root()
    require_binary("ip")
    with Topology() as topo:
        yield topo
