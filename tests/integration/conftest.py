"""Fixtures for integration tests (network namespaces; see tests/integration/netns.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from protos.security.ca import create_ca, issue_certificate
from tests.conftest import require_binary, require_fuse, require_root
from tests.integration.netns import Topology, cleanup_stale
from tests.integration.repl_rig import Node1, Node2, Pki
from tests.integration.setup_site import SetupSite
from tests.integration.site import Site


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


@pytest.fixture
def site(topology: Topology, tmp_path: Path) -> Iterator[Site]:
    """Two servers in their own network and mount namespaces, configured from the example
    config (tests/integration/site.py); agents not started yet."""
    require_fuse()
    for binary in ("nsenter", "unshare", "arping", "ping"):
        require_binary(binary)
    with Site(topology, tmp_path / "site") as s:
        yield s


# -- the ModuleReplication rig (tests/integration/repl_rig.py) ---------------------------
@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    create_ca(d / "ca", "test")
    for node in ("node1", "node2"):
        issue_certificate(d / "ca", node, d / "certs")
    return Pki(d)


@pytest.fixture
def nodes(tmp_path: Path, pki: Pki) -> Iterator[Callable[..., tuple[Node1, Node2]]]:
    require_fuse()
    made: list[tuple[Node1, Node2]] = []

    def make(dirs: int = 1, **kw: Any) -> tuple[Node1, Node2]:
        n2 = Node2(tmp_path, pki, dirs)
        n2.start()
        n1 = Node1(tmp_path, pki, n2.port, dirs, **kw)
        made.append((n1, n2))
        return n1, n2

    yield make
    for n1, n2 in made:
        n1.mr.stop_primary()
        n2.close()


@pytest.fixture
def setup_site(topology: Topology, tmp_path: Path) -> Iterator[SetupSite]:
    """Two freshly installed servers (no configuration, pairing open, mDNS) and the desk
    PC (this process) on their LAN (tests/integration/setup_site.py)."""
    require_fuse()
    for binary in ("nsenter", "unshare", "ping"):
        require_binary(binary)
    with SetupSite(topology, tmp_path / "setup") as s:
        yield s
