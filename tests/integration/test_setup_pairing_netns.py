"""Two freshly installed servers in their namespaces, found by real mDNS from the desk
and paired by the console's client (issue 12, points 1 and 2)."""

from __future__ import annotations

import asyncio

from console.client.setup_client import SetupClient
from console.settings.secrets import SecretStore
from tests.integration.setup_site import DESK_IP, NODES
from tests.keyrings import MemoryKeyring


def test_the_desk_finds_both_servers_over_mdns_and_pairs_them(setup_site, tmp_path) -> None:
    for node in NODES:
        setup_site.start(node)
    client = SetupClient(tmp_path / "desk", SecretStore(MemoryKeyring()), cluster_name="site",
                         mdns_interfaces=[DESK_IP])  # fmt: skip

    async def go():
        found = await client.discover(3.0)
        by_address = {s.address: s for s in found}
        # Both of ours; any other MirrorPair server on the LAN answers too (the wizard
        # lists it), e.g. another test's agents when tests run in parallel.
        assert {setup_site.address(n) for n in NODES} <= set(by_address), found
        facts = {}
        for node in NODES:
            server = by_address[setup_site.address(node)]
            assert server.pairing_open and not server.paired
            facts[node] = await client.pair(server, node, setup_site.code(node))
        again = {s.address: s for s in await client.discover(3.0)}
        return facts, again

    facts, again = asyncio.run(go())
    for node in NODES:
        assert facts[node].node_id == node
        assert any(a.address == setup_site.address(node).split(":")[0]
                   for a in facts[node].addresses)  # fmt: skip
        advert = again.get(setup_site.address(node))
        assert advert is not None, (again, setup_site.agent_text(node))
        # The advertisement follows: paired, closed, the cluster's certificate.
        assert advert.paired and not advert.pairing_open and advert.cluster_name == "site"
        assert f"paired as {node} of cluster 'site'" in setup_site.agent_text(node)
