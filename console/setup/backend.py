"""What the setup flow needs from the two servers, as typed values (no gRPC here).

``console.client.setup_client.SetupClient`` is the real implementation (mDNS, the Pairing
service, the Agent API); the flow object only sees this protocol, so its logic is tested
on its own and the wizard's pages stay thin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class SetupError(Exception):
    """A step failed; the message says what and what to do (shown on the wizard's page)."""


class PairingRefused(SetupError):
    """A wrong code (``attempts_left`` more tries), or too many (``cooldown_s`` to wait),
    or pairing is closed on that server (both 0)."""

    def __init__(self, message: str, attempts_left: int = 0, cooldown_s: float = 0.0) -> None:
        super().__init__(message)
        self.attempts_left = attempts_left
        self.cooldown_s = cooldown_s


@dataclass(frozen=True)
class FoundServer:
    """An agent found by mDNS or reached at a typed address."""

    address: str  # host:port of its API
    hostname: str
    version: str
    paired: bool
    pairing_open: bool
    fingerprint: str  # SHA-256 of the certificate it serves, hex
    source: str = "mdns"  # "mdns" or "typed"
    cluster_name: str = ""  # when paired


@dataclass(frozen=True)
class NetAddress:
    interface: str
    address: str
    prefix_len: int


@dataclass(frozen=True)
class HostFacts:
    """A paired server, as the wizard plans its configuration."""

    node_id: str  # node1 or node2
    address: str  # host:port of its API (what the config's [nodes.X] api becomes)
    hostname: str
    addresses: tuple[NetAddress, ...] = ()
    memory_bytes: int = 0
    config_version: int = 0  # 0 = no configuration yet


@dataclass(frozen=True)
class VmDiskFacts:
    target: str
    path: str
    size_bytes: int


@dataclass(frozen=True)
class VmFacts:
    """A domain one node's libvirt knows."""

    node_id: str
    domain: str
    state: str
    vcpus: int
    memory_bytes: int
    disks: tuple[VmDiskFacts, ...] = ()
    module: str = ""  # the module already protecting it ("" none)


@dataclass(frozen=True)
class PathFacts:
    path: str
    exists: bool
    is_dir: bool
    empty: bool
    error: str = ""


@dataclass(frozen=True)
class AddressFacts:
    address: str
    answers: bool  # something answered a ping from that node
    local: bool  # the node holds it already


@dataclass(frozen=True)
class ApplyOutcome:
    """The result of a two-phase apply to both nodes (both or neither)."""

    applied: bool
    version: int
    refused: dict[str, str] = field(default_factory=dict)  # node id -> why it refused
    changes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # node id -> what changed


class SetupBackend(Protocol):
    async def discover(self, seconds: float) -> list[FoundServer]:
        """Agents answering ``_mirrorpair._tcp`` on the local networks."""
        ...

    async def reach(self, address: str) -> FoundServer:
        """The agent at a typed host:port; SetupError naming why it cannot be reached."""
        ...

    async def pair(self, server: FoundServer, node_id: str, code: str) -> HostFacts:
        """Pair ``server`` as ``node_id`` with its code (the CA is created on the first
        pairing); PairingRefused or SetupError on failure."""
        ...

    async def host_facts(self, node_id: str) -> HostFacts: ...

    async def list_vms(self, node_id: str) -> list[VmFacts]:
        """SetupError when that node's libvirt cannot be reached."""
        ...

    async def probe(
        self, node_id: str, paths: list[str], addresses: list[str]
    ) -> tuple[list[PathFacts], list[AddressFacts]]: ...

    async def apply(self, toml_text: str, expected: dict[str, int]) -> ApplyOutcome:
        """Prepare on both nodes, then commit on both, or abort on both. ``expected``:
        the version each node is believed to run (0 = none)."""
        ...
