"""A first configuration applied to two freshly paired servers (issue 12, point 6): the
console's client (the desk = this process, on the site's LAN) pairs both, then applies
one configuration to both through the two phases; each agent, which had none, installs
it and starts its engine, and the module reaches PRIM/SECOND. A second apply adds a
module without touching the first one."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from console.client.setup_client import SetupClient
from console.settings.secrets import SecretStore
from protos import mirrorpair_pb2 as pb
from tests.integration.cluster_netns import APP_CHECK, APP_STOP
from tests.integration.netns import HB_IP, LAN_IP
from tests.integration.setup_site import DESK_IP, NODES
from tests.keyrings import MemoryKeyring

pytestmark = pytest.mark.root

START = "sleep 100000 > /dev/null 2>&1 & echo $! > app.pid"


def config(version: int, modules: tuple[str, ...]) -> str:
    """What a console writes: no [tls] and no data_dir (the agents' paired state has them)."""
    nodes = "".join(f'[nodes.{n}]\napi = "{LAN_IP[n]}:7700"\n\n' for n in NODES)
    mods = "".join(
        f'[[module]]\nname = "{m}"\nkind = "app"\nstart = {json.dumps(START)}\n'
        f"stop = {json.dumps(APP_STOP)}\ncheck = {json.dumps(APP_CHECK)}\n\n"
        for m in modules
    )
    return (f'[cluster]\nname = "site"\nversion = {version}\n'
            f'secret = "first-apply-secret-0123456789"\npulse_ms = 250\ntimeout_ms = 1500\n\n'
            f'{nodes}[[heartbeat]]\nname = "lan"\nnode1 = "{LAN_IP["node1"]}"\n'
            f'node2 = "{LAN_IP["node2"]}"\n\n[[heartbeat]]\nname = "direct"\n'
            f'node1 = "{HB_IP["node1"]}"\nnode2 = "{HB_IP["node2"]}"\n\n{mods}')  # fmt: skip


def test_a_first_configuration_starts_both_engines(setup_site, tmp_path) -> None:
    site = setup_site
    for node in NODES:
        site.start(node)
    client = SetupClient(tmp_path / "desk", SecretStore(MemoryKeyring()), cluster_name="site",
                         mdns_interfaces=[DESK_IP])  # fmt: skip

    async def states(module: str) -> dict[str, tuple[str, str]]:
        out = {}
        for node in NODES:
            st = await client._agent(node, lambda s: s.GetStatus(pb.GetStatusRequest(),
                                                                 timeout=5))  # fmt: skip
            for m in st.modules:
                if m.name == module:
                    out[node] = (pb.ModuleState.Name(m.state), pb.Readiness.Name(m.readiness))
        return out

    async def wait_pair(module: str) -> None:
        want = {"node1": ("STATE_PRIM", "READINESS_READY"),
                "node2": ("STATE_SECOND", "READINESS_READY")}  # fmt: skip
        deadline = time.monotonic() + 40
        while (got := await states(module)) != want:
            assert time.monotonic() < deadline, (got, site.agent_text("node1"))
            await asyncio.sleep(0.3)

    async def go() -> None:
        found = {s.address: s for s in await client.discover(3.0)}
        for node in NODES:
            await client.pair(found[site.address(node)], node, site.code(node))
        facts = [await client.host_facts(n) for n in NODES]
        assert [f.config_version for f in facts] == [0, 0]
        outcome = await client.apply(config(1, ("web",)), {"node1": 0, "node2": 0})
        assert outcome.applied, outcome
        await wait_pair("web")
        pid = (site.state_dir("node1") / "data" / "modules" / "web" / "app.pid").read_text()
        outcome = await client.apply(config(2, ("web", "db")), {"node1": 1, "node2": 1})
        assert outcome.applied and outcome.changes["node2"] == ("add module db",), outcome
        await wait_pair("db")
        await wait_pair("web")
        again = (site.state_dir("node1") / "data" / "modules" / "web" / "app.pid").read_text()
        assert again == pid  # web untouched
        assert [(await client.host_facts(n)).config_version for n in NODES] == [2, 2]

    asyncio.run(go())
    for node in NODES:
        text = site.config_path(node).read_text()
        assert "version = 2" in text and 'secret = "first-apply-secret' in text
