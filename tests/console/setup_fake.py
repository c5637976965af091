"""An in-memory ``SetupBackend``: two servers, their networks, VMs, directories and pairing
codes, for the flow's and the wizard's tests without agents (the end-to-end test with
real agents is elsewhere). It keeps what was asked, so tests can say nothing was applied."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace

from console.setup.backend import (
    AddressFacts,
    ApplyOutcome,
    FoundServer,
    HostFacts,
    NetAddress,
    PairingRefused,
    PathFacts,
    SetupError,
    VmDiskFacts,
    VmFacts,
)

A, B = "192.168.1.11:7700", "192.168.1.12:7700"
CODES = {A: "7KQ2-M9XD-4HTA", B: "P3ZR-8WCE-2JNL"}


def server(address: str, hostname: str, **kw: object) -> FoundServer:
    return FoundServer(address, hostname, "1.0", paired=False, pairing_open=True,
                       fingerprint=f"fp-{hostname}", **kw)  # type: ignore[arg-type]  # fmt: skip


def host(address: str, hostname: str, *nets: tuple[str, str, int], version: int = 0) -> HostFacts:
    addrs = (NetAddress("lo", "127.0.0.1", 8), *(NetAddress(i, a, p) for i, a, p in nets))
    return HostFacts("", address, hostname, addrs, 16 << 30, version)


@dataclass
class FakeBackend:
    servers: dict[str, FoundServer] = field(default_factory=dict)
    discovered: list[str] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)  # address -> why
    codes: dict[str, str] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)  # address -> wrong codes left
    cooldown_s: float = 60.0
    hosts: dict[str, HostFacts] = field(default_factory=dict)  # address -> facts
    vms: dict[str, list[VmFacts]] = field(default_factory=dict)  # node -> its libvirt's
    vm_errors: dict[str, str] = field(default_factory=dict)
    dirs: dict[str, set[str]] = field(default_factory=dict)  # node -> directories
    files: dict[str, set[str]] = field(default_factory=dict)
    answering: set[str] = field(default_factory=set)  # IPs something answers at
    refuse: dict[str, str] = field(default_factory=dict)  # node -> why it refuses a prepare
    delay: float = 0.0  # seconds every call takes (the wizard's busy state)
    paired: dict[str, str] = field(default_factory=dict)  # node -> address
    applied: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    running: dict[str, int] = field(default_factory=dict)  # node -> version it runs

    async def _step(self, what: str) -> None:
        self.calls.append(what)
        if self.delay:
            await asyncio.sleep(self.delay)

    async def discover(self, seconds: float) -> list[FoundServer]:
        await self._step("discover")
        return [self.servers[a] for a in self.discovered]

    async def reach(self, address: str) -> FoundServer:
        await self._step(f"reach {address}")
        if address in self.unreachable or address not in self.servers:
            why = self.unreachable.get(address, "connection refused")
            raise SetupError(f"{address} cannot be reached: {why}")
        return self.servers[address]

    async def pair(self, server: FoundServer, node_id: str, code: str) -> HostFacts:
        await self._step(f"pair {node_id} {server.address} {server.cluster_name}")
        a = server.address
        left = self.attempts.setdefault(a, 3)
        if left <= 0:
            raise PairingRefused("too many wrong codes", 0, self.cooldown_s)
        if code != self.codes.get(a):
            self.attempts[a] = left - 1
            if left - 1 == 0:
                raise PairingRefused("wrong pairing code", 0, self.cooldown_s)
            raise PairingRefused("wrong pairing code", left - 1)
        self.paired[node_id] = a
        return replace(self.hosts[a], node_id=node_id)

    async def host_facts(self, node_id: str) -> HostFacts:
        await self._step(f"host_facts {node_id}")
        facts = self.hosts[self.paired[node_id]]
        return replace(facts, node_id=node_id, config_version=self.running.get(node_id, 0))

    async def list_vms(self, node_id: str) -> list[VmFacts]:
        await self._step(f"list_vms {node_id}")
        if node_id in self.vm_errors:
            raise SetupError(self.vm_errors[node_id])
        return list(self.vms.get(node_id, []))

    async def probe(
        self, node_id: str, paths: list[str], addresses: list[str]
    ) -> tuple[list[PathFacts], list[AddressFacts]]:
        await self._step(f"probe {node_id} {paths} {addresses}")
        dirs, files = self.dirs.get(node_id, set()), self.files.get(node_id, set())
        path_facts = [PathFacts(p, p in dirs or p in files, p in dirs, False) for p in paths]
        mine = {a.address for a in self.hosts[self.paired[node_id]].addresses}
        addr_facts = [
            AddressFacts(a, a in self.answering or a in mine, a in mine) for a in addresses
        ]
        return path_facts, addr_facts

    async def apply(self, toml_text: str, expected: dict[str, int]) -> ApplyOutcome:
        await self._step("apply")
        self.applied.append((toml_text, expected))
        stale = {n: f"runs version {self.running.get(n, 0)}, not {v}"
                 for n, v in expected.items() if self.running.get(n, 0) != v}  # fmt: skip
        refused = {**stale, **self.refuse}
        if refused:
            return ApplyOutcome(False, 0, refused)
        version = int(toml_text.split("version = ", 1)[1].split("\n", 1)[0])
        self.running = dict.fromkeys(expected, version)
        return ApplyOutcome(True, version, {}, {n: ("configured",) for n in expected})


def two_servers() -> FakeBackend:
    """srv-a and srv-b: a LAN (192.168.1.0/24) and a direct cable (10.10.0.0/24); a VM on
    each, an application directory on srv-a."""
    disk = VmDiskFacts("vda", "/srv/vms/recorder/recorder.qcow2", 40 << 30)
    data = VmDiskFacts("vdb", "/srv/vms/recorder/data.raw", 200 << 30)
    access = VmDiskFacts("vda", "/srv/vms/access/root.img", 20 << 30)
    return FakeBackend(
        servers={A: server(A, "srv-a"), B: server(B, "srv-b")},
        discovered=[A, B],
        codes=dict(CODES),
        hosts={
            A: host(A, "srv-a", ("eth0", "192.168.1.11", 24), ("eth1", "10.10.0.1", 24)),
            B: host(B, "srv-b", ("eno1", "192.168.1.12", 24), ("eth1", "10.10.0.2", 24)),
        },
        vms={
            "node1": [VmFacts("node1", "recorder", "running", 4, 8 << 30, (disk, data))],
            "node2": [VmFacts("node2", "access", "shut off", 2, 4 << 30, (access,))],
        },
        dirs={"node1": {"/srv/vms/recorder", "/srv/www"}, "node2": {"/srv/vms/access"}},
        files={"node1": {"/srv/vms/recorder/recorder.xml"}, "node2": set()},
    )
