"""The setup wizard's real backend (``SetupBackend``): mDNS, the Pairing service, then
the Agent API over the cluster's mTLS. Only the proto contract and protos.security are
used to talk to agents (issue 12, point 8)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID

from console.client.credentials import build_credentials
from console.client.discovery import browse, fingerprint_of, served_certificate, split_address
from console.settings.clusters import ClusterEntry, make_entry
from console.settings.identity import ClusterPki
from console.settings.secrets import PASSPHRASE, SecretStore
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
from console.setup.versions import ConfigVersion, with_version
from protos import mirrorpair_pb2 as pb
from protos import mirrorpair_pb2_grpc as pb_grpc
from protos.security.credentials import TlsError, server_name
from protos.security.pairing_proof import pairing_proof

PAIRING_NAME = "mirrorpair-pairing"  # the DNS name of an agent's pairing certificate
HEARTBEAT_SECRET = "heartbeat-secret"
CALL_TIMEOUT_S = 10.0
SWITCH_WAIT_S = 15.0  # a paired agent restarts its server with the cluster's mTLS
T = TypeVar("T")


def _detail(e: grpc.aio.AioRpcError) -> str:
    return e.details() or e.code().name


class SetupClient:
    def __init__(
        self, base_dir: Path, secret_store: SecretStore, *, cluster_name: str = "",
        mdns_interfaces: list[str] | None = None,
    ) -> None:  # fmt: skip
        self.base_dir = Path(base_dir)  # <config>/mirrorpair: one directory per cluster
        self.secrets = secret_store
        self.cluster_name = cluster_name
        self.mdns_interfaces = mdns_interfaces
        self.nodes: dict[str, str] = {}  # node id -> API address, once paired
        self.entry: ClusterEntry | None = None  # an existing cluster (editing)

    @classmethod
    def for_entry(
        cls, entry: ClusterEntry, secret_store: SecretStore, base_dir: Path
    ) -> SetupClient:
        """The backend that edits an existing cluster's configuration."""
        client = cls(base_dir, secret_store, cluster_name=entry.name)
        client.entry = entry
        client.nodes = dict(entry.addresses)
        return client

    def secrets_note(self) -> str:
        """What the wizard must tell about secrets ("" when the keyring keeps them)."""
        return "" if self.secrets.available() else self.secrets.unavailable_message()

    # ----- the cluster's PKI on this PC ---------------------------------------------
    def pki(self) -> ClusterPki:
        if not self.cluster_name:
            raise SetupError("name the cluster before pairing its servers")
        passphrase = self.secrets.get(self.cluster_name, PASSPHRASE)
        if passphrase is None:
            passphrase = secrets.token_urlsafe(32)
            self.secrets.set(self.cluster_name, passphrase, PASSPHRASE)
        return ClusterPki(self.base_dir / self.cluster_name, passphrase)

    def _channel(self, node_id: str) -> grpc.aio.Channel:
        address = self.nodes.get(node_id)
        if address is None:
            raise SetupError(f"{node_id} is not paired yet")
        try:
            if self.entry is not None:
                passphrase = self.secrets.get(self.entry.name, PASSPHRASE)
                creds = build_credentials(self.entry.identity, passphrase)
            else:
                pki = self.pki()
                creds = build_credentials(pki.identity, pki.passphrase)
        except TlsError as e:
            raise SetupError(str(e)) from None
        options = [("grpc.ssl_target_name_override", server_name(node_id))]
        return grpc.aio.secure_channel(address, creds, options=options)

    async def _agent(self, node_id: str, call: Callable[[pb_grpc.AgentStub], Awaitable[T]]) -> T:
        async with self._channel(node_id) as channel:
            try:
                return await call(pb_grpc.AgentStub(channel))
            except grpc.aio.AioRpcError as e:
                where = self.nodes.get(node_id, "")
                raise SetupError(f"{node_id} ({where}): {_detail(e)}") from None

    # ----- finding servers ------------------------------------------------------------
    async def discover(self, seconds: float) -> list[FoundServer]:
        return await browse(seconds, self.mdns_interfaces)

    async def reach(self, address: str) -> FoundServer:
        try:
            split_address(address)
            pem = await served_certificate(address)
        except (OSError, ValueError) as e:
            raise SetupError(f"cannot reach {address}: {e}") from None
        cert = x509.load_pem_x509_certificate(pem)
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not names or names[0].value != PAIRING_NAME:
            # A paired agent: its issuer (the cluster CA) names the cluster in its OU.
            ou = cert.issuer.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
            cluster = str(ou[0].value) if ou else "another cluster"
            return FoundServer(address, "", "", paired=True, pairing_open=False,
                               fingerprint=fingerprint_of(pem), source="typed",
                               cluster_name=cluster)  # fmt: skip
        info = await self._pairing_call(address, pem, lambda s: s.GetHostInfo(
            pb.HostInfoRequest(), timeout=CALL_TIMEOUT_S))  # fmt: skip
        return FoundServer(address, info.hostname, info.version, paired=info.paired,
                           pairing_open=info.pairing_open, fingerprint=fingerprint_of(pem),
                           source="typed", cluster_name=info.cluster_name)  # fmt: skip

    async def _pairing_call(
        self, address: str, pem: bytes, call: Callable[[pb_grpc.PairingStub], Awaitable[T]]
    ) -> T:
        creds = grpc.ssl_channel_credentials(root_certificates=pem)
        options = [("grpc.ssl_target_name_override", PAIRING_NAME)]
        async with grpc.aio.secure_channel(address, creds, options=options) as channel:
            return await call(pb_grpc.PairingStub(channel))

    # ----- pairing ----------------------------------------------------------------------
    async def pair(self, server: FoundServer, node_id: str, code: str) -> HostFacts:
        # The flow names the new cluster in the server it pairs (FoundServer.cluster_name).
        self.cluster_name = server.cluster_name or self.cluster_name
        try:
            pem = await served_certificate(server.address)
        except OSError as e:
            raise SetupError(f"cannot reach {server.address}: {e}") from None
        if server.fingerprint and fingerprint_of(pem) != server.fingerprint:
            raise SetupError(
                f"{server.address} now presents another certificate than when it was found "
                "(another machine at that address?): find the servers again"
            )
        pki = self.pki()
        try:
            pki.ensure(self.cluster_name)
            pki.ca_key()  # opens with this session's passphrase, or says why not
        except (TlsError, ValueError, OSError) as e:
            raise SetupError(
                f"the CA of cluster {self.cluster_name!r} on this PC ({pki.directory}) cannot "
                f"be used: {e}. Without its passphrase (kept in the OS keyring) it is lost: "
                "choose another cluster name, or remove that folder and pair both servers "
                "again"
            ) from None
        host = split_address(server.address)[0]
        # The code proves itself bound to the certificate this PC sees (an impostor's
        # would differ): protos/security/pairing_proof.py.
        proof = pairing_proof(code, fingerprint_of(pem))
        try:
            begun = await self._pairing_call(server.address, pem, lambda s: s.BeginPairing(
                pb.BeginPairingRequest(code=proof, node_id=node_id,
                                       cluster_name=self.cluster_name, ca_cert=pki.ca_pem(),
                                       addresses=[host]), timeout=CALL_TIMEOUT_S))  # fmt: skip
        except grpc.aio.AioRpcError as e:
            raise _pairing_error(server.address, e) from None
        cert = pki.sign_node(node_id, begun.csr, [host])
        self.nodes[node_id] = server.address
        try:
            await self._pairing_call(server.address, pem, lambda s: s.CompletePairing(
                pb.CompletePairingRequest(code=proof, certificate=cert),
                timeout=CALL_TIMEOUT_S))  # fmt: skip
        except grpc.aio.AioRpcError as e:
            lost = e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            if lost:  # the answer may be what was lost: is it paired with our CA now?
                with contextlib.suppress(SetupError):
                    return await self._wait_paired(node_id)
            del self.nodes[node_id]
            raise _pairing_error(server.address, e) from None
        return await self._wait_paired(node_id)

    async def _wait_paired(self, node_id: str) -> HostFacts:
        """The agent restarts its server with the cluster's mTLS: wait for it."""
        deadline = asyncio.get_running_loop().time() + SWITCH_WAIT_S
        while True:
            try:
                return await self.host_facts(node_id)
            except SetupError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.3)

    # ----- what the wizard asks paired servers -------------------------------------------
    async def host_facts(self, node_id: str) -> HostFacts:
        info = await self._agent(node_id, lambda s: s.GetHostInfo(
            pb.HostInfoRequest(), timeout=CALL_TIMEOUT_S))  # fmt: skip
        return HostFacts(
            node_id=node_id, address=self.nodes[node_id], hostname=info.hostname,
            addresses=tuple(NetAddress(a.interface, a.address, a.prefix_len)
                            for a in info.addresses),
            memory_bytes=info.memory_bytes, config_version=info.config_version,
        )  # fmt: skip

    async def list_vms(self, node_id: str) -> list[VmFacts]:
        reply = await self._agent(node_id, lambda s: s.ListVms(
            pb.ListVmsRequest(), timeout=CALL_TIMEOUT_S))  # fmt: skip
        return [
            VmFacts(
                node_id,
                v.domain,
                v.state,
                v.vcpus,
                v.memory_bytes,
                tuple(VmDiskFacts(d.target, d.path, d.size_bytes) for d in v.disks),
                module=v.module,
            )  # fmt: skip
            for v in reply.vms
        ]

    async def probe(
        self, node_id: str, paths: list[str], addresses: list[str]
    ) -> tuple[list[PathFacts], list[AddressFacts]]:
        request = pb.ProbeHostRequest(paths=paths, addresses=addresses)
        reply = await self._agent(node_id, lambda s: s.ProbeHost(request, timeout=CALL_TIMEOUT_S))
        return (
            [PathFacts(p.path, p.exists, p.is_dir, p.empty, p.error) for p in reply.paths],
            [AddressFacts(a.address, a.answers, a.local) for a in reply.addresses],
        )

    async def running_config(self) -> str:
        """The configuration the cluster runs (its secret masked), from either node."""
        errors = []
        for node in ("node1", "node2"):
            try:
                reply = await self._agent(node, lambda s: s.GetConfig(
                    pb.GetConfigRequest(), timeout=CALL_TIMEOUT_S))  # fmt: skip
            except SetupError as e:
                errors.append(str(e))
                continue
            if reply.toml:
                return reply.toml
            errors.append(f"{node} has no configuration yet")
        raise SetupError("; ".join(errors))

    async def config_versions(self) -> list[ConfigVersion]:
        """The versions the nodes keep, newest first, with the nodes running each."""
        found: dict[int, ConfigVersion] = {}
        errors = []
        for node in ("node1", "node2"):
            try:
                reply = await self._agent(node, lambda s: s.ListConfigVersions(
                    pb.ListConfigVersionsRequest(), timeout=CALL_TIMEOUT_S))  # fmt: skip
            except SetupError as e:
                errors.append(str(e))
                continue
            for v in reply.versions:
                known = found.get(v.version) or ConfigVersion(v.version, v.applied_at,
                                                              v.applied_by)  # fmt: skip
                running = known.running_on + ((node,) if v.running else ())
                found[v.version] = replace(known, running_on=running)
        if not found and errors:
            raise SetupError("; ".join(errors))
        return sorted(found.values(), key=lambda v: -v.version)

    async def restore(self, version: int) -> ApplyOutcome:
        """Apply kept ``version`` again as the next version, on both nodes or neither."""
        current: dict[str, int] = {}
        text = ""
        for node in ("node1", "node2"):
            running = await self._agent(node, lambda s: s.GetConfig(
                pb.GetConfigRequest(), timeout=CALL_TIMEOUT_S))  # fmt: skip
            current[node] = running.version
            if not text:
                with contextlib.suppress(SetupError):
                    old = await self._agent(node, lambda s: s.GetConfig(
                        pb.GetConfigRequest(version=version), timeout=CALL_TIMEOUT_S))  # fmt: skip
                    text = old.toml
        if not text:
            raise SetupError(f"neither node keeps configuration version {version}")
        # The text's secret is masked ("***"): each node keeps its own.
        return await self.apply(with_version(text, max(current.values()) + 1), current)

    def cluster_entry(self, flow: object = None) -> ClusterEntry:
        """The console's entry for the cluster just set up (certificate from pairing)."""
        identity = self.pki().identity
        return make_entry(self.cluster_name, self.nodes["node1"], self.nodes["node2"],
                          str(identity.ca), str(identity.cert), str(identity.key))  # fmt: skip

    # ----- applying -----------------------------------------------------------------------
    async def apply(self, toml_text: str, expected: dict[str, int]) -> ApplyOutcome:
        from console.client.config_apply import apply_both

        channels = {n: self._channel(n) for n in ("node1", "node2")}
        try:
            stubs = {n: pb_grpc.AgentStub(c) for n, c in channels.items()}
            outcome = await apply_both(stubs, toml_text, expected)
        finally:
            for c in channels.values():
                await c.close()
        if outcome.applied:
            secret = tomllib.loads(toml_text).get("cluster", {}).get("secret")
            if isinstance(secret, str) and secret != "***":
                self.secrets.set(self.cluster_name, secret, HEARTBEAT_SECRET)
        return outcome


def _pairing_error(address: str, e: grpc.aio.AioRpcError) -> SetupError:
    md = {k: v for k, v in (e.trailing_metadata() or ())}
    if e.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.RESOURCE_EXHAUSTED):
        return PairingRefused(
            _detail(e), attempts_left=int(md.get("attempts-left", 0) or 0),
            cooldown_s=float(md.get("cooldown-s", 0) or 0),
        )  # fmt: skip
    if e.code() == grpc.StatusCode.FAILED_PRECONDITION:
        return PairingRefused(_detail(e))
    return SetupError(f"pairing {address} failed: {_detail(e)}")
