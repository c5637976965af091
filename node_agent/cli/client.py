"""The CLI's one gRPC client: a small synchronous wrapper over the Agent API.

Every transport failure (agent down, wrong address, TLS handshake refused, timeout)
becomes ``AgentUnavailable`` with a message an admin can act on; an agent that
answered with an error becomes ``AgentCallError`` carrying the gRPC status code.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from node_agent.cli.select import local_node
from node_agent.config.load import load_config
from node_agent.config.model import NODE_IDS, ClusterConfig
from protos import mirrorpair_pb2 as pb
from protos import mirrorpair_pb2_grpc as pb_grpc
from protos.security.credentials import channel_credentials, secure_channel, server_name

T = TypeVar("T")
StrPath = str | os.PathLike[str]


class AgentClientError(Exception):
    """Base of the client's errors; ``node_id`` and ``address`` say which agent."""

    def __init__(self, node_id: str, address: str, detail: str, message: str) -> None:
        self.node_id, self.address, self.detail = node_id, address, detail
        super().__init__(message)


class AgentUnavailable(AgentClientError):
    """The agent could not be reached or the TLS handshake failed."""

    def __init__(self, node_id: str, address: str, detail: str) -> None:
        super().__init__(
            node_id, address, detail, f"agent {node_id} at {address} is unavailable: {detail}"
        )


class AgentCallError(AgentClientError):
    """The agent answered with an error (unknown module, invalid argument...)."""

    def __init__(self, node_id: str, address: str, code: grpc.StatusCode, detail: str) -> None:
        self.code = code
        super().__init__(node_id, address, detail, f"agent {node_id} at {address}: {detail}")


def describe_rpc_error(error: grpc.RpcError) -> str:
    """A readable reason for a transport-level failure (the raw detail kept in brackets)."""
    code = error.code() if hasattr(error, "code") else None
    details = (error.details() if hasattr(error, "details") else "") or str(error)
    low = details.lower()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "no answer before the timeout (agent hung, or a firewall drops the traffic)"
    if "connection refused" in low:
        return "connection refused (is mirrorpair-agent running there?)"
    if "peer name" in low and "not in peer certificate" in low:
        return f"the agent's certificate is not for this node (wrong address?) [{details}]"
    if "certificate_verify_failed" in low or "handshake failed" in low:
        return (
            "TLS handshake failed: this client does not trust the agent's certificate "
            f"(is --ca this cluster's CA?) [{details}]"
        )
    if "socket closed" in low:
        # What a client sees when the agent rejects its certificate during the handshake.
        return (
            "the agent closed the connection: it refuses this client's certificate "
            f"(not issued by the cluster's CA?) or is shutting down [{details}]"
        )
    return details


_TRANSPORT_CODES = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
)


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


class AgentClient:
    """A blocking client for one agent. Dials ``address`` and verifies that the server
    certificate names ``server_name`` (``mirrorpair-<node>``)."""

    def __init__(
        self,
        address: str,
        server_name: str,
        ca: StrPath,
        cert: StrPath,
        key: StrPath,
        timeout: float = 5.0,
        node_id: str = "",
    ) -> None:
        self.address = address
        self.server_name = server_name
        self.node_id = node_id or server_name.removeprefix("mirrorpair-")
        self.timeout = timeout
        creds = channel_credentials(ca, cert, key)  # TlsError names a bad file
        self._channel = secure_channel(address, creds, server_name)
        self._stub = pb_grpc.AgentStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    @classmethod
    def for_node(cls, node: str, address: str, tls: TlsFiles, timeout: float = 5.0) -> AgentClient:
        """The client of cluster node ``node``, whose certificate names mirrorpair-<node>."""
        return cls(address, server_name(node), tls.ca, tls.cert, tls.key, timeout, node)

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: Callable[..., T], request: Any, timeout: float | None = None) -> T:
        try:
            return method(request, timeout=timeout or self.timeout)
        except grpc.RpcError as e:
            raise self.error(e) from None

    def error(self, e: grpc.RpcError) -> AgentClientError:
        """The client error for a failed call of this agent (transport or answered)."""
        code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
        if code in _TRANSPORT_CODES:
            return AgentUnavailable(self.node_id, self.address, describe_rpc_error(e))
        details = e.details() if hasattr(e, "details") else str(e)
        return AgentCallError(self.node_id, self.address, code, details)

    def status(self) -> pb.NodeStatus:
        return self._call(self._stub.GetStatus, pb.GetStatusRequest())

    def command(
        self, module: str, cmd: pb.Command | str, who: str, fullsync: bool = False
    ) -> pb.CommandReply:
        """``cmd``: a ``pb.Command`` value or a name like ``"swap"``."""
        if isinstance(cmd, str):
            cmd = pb.Command.Value("COMMAND_" + cmd.upper())
        request = pb.CommandRequest(module=module, command=cmd, fullsync=fullsync, issued_by=who)
        return self._call(self._stub.RunCommand, request)

    def logs(
        self, module: str = "", limit: int = 0, min_level: str = "", text: str = ""
    ) -> list[pb.LogEntry]:
        request = pb.GetLogsRequest(module=module, limit=limit, min_level=min_level, text=text)
        return list(self._call(self._stub.GetLogs, request).entries)

    def watch(self, log_level: str = "", keepalive_s: float = 2.0) -> Any:
        """The raw WatchStatus call (iterate for StatusEvents, ``cancel()`` to end it): a
        snapshot at once, then one per change and at least every ``keepalive_s``; with
        ``log_level``, each event also carries the log entries logged since the last."""
        request = pb.WatchRequest(log_level=log_level, keepalive_s=keepalive_s)
        return self._stub.WatchStatus(request)

    def config(self) -> pb.GetConfigReply:
        return self._call(self._stub.GetConfig, pb.GetConfigRequest())

    def adopt_vm(self, request: pb.AdoptVmRequest, dry_run: bool) -> pb.AdoptVmReply:
        request = pb.AdoptVmRequest(domain=request.domain, directory=request.directory,
                                    module=request.module, libvirt_uri=request.libvirt_uri,
                                    dry_run=dry_run)  # fmt: skip
        # Moving disk images across filesystems takes as long as copying them.
        return self._call(self._stub.AdoptVm, request, timeout=None if dry_run else 3600)

    def list_vms(self, libvirt_uri: str = "") -> list[pb.VmInfo]:
        request = pb.ListVmsRequest(libvirt_uri=libvirt_uri)
        return list(self._call(self._stub.ListVms, request).vms)

    def digest(
        self, module: str, zone_size: int = 0, algorithm: str = "", idle_timeout: float = 0.0
    ) -> DigestStream:
        """Stream the zone hashes of the module's copy on this node (`mirrorpair verify`).

        No overall deadline (a big tree takes long); the agent sends a chunk at least
        every few seconds, so silence for ``idle_timeout`` (default: max(timeout, 30 s))
        means it hung and the stream fails with AgentUnavailable."""
        request = pb.DigestRequest(module=module, zone_size=zone_size, algorithm=algorithm)
        idle = idle_timeout or max(self.timeout, DIGEST_IDLE_S)
        return DigestStream(self, self._stub.DigestModule(request), idle)

    def health(self, service: str = "") -> str:
        """The standard health status name ("SERVING", ...) of ``service``."""
        reply = self._call(self._health.Check, health_pb2.HealthCheckRequest(service=service))
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


DIGEST_IDLE_S = 30.0


class DigestStream:
    """The DigestModule stream of one agent: iterate for the chunks; ``cancel()`` from
    any thread stops it (the iteration then ends quietly)."""

    def __init__(self, client: AgentClient, call: Any, idle_timeout: float) -> None:
        self._client, self._call, self._idle = client, call, idle_timeout
        self._last = time.monotonic()
        self._done = threading.Event()
        self._stalled = self._cancelled = False

    def cancel(self) -> None:
        self._cancelled = True
        self._call.cancel()

    def _watchdog(self) -> None:
        while not self._done.wait(min(1.0, self._idle)):
            if time.monotonic() - self._last > self._idle:
                self._stalled = True
                self._call.cancel()
                return

    def __iter__(self) -> Iterator[pb.DigestChunk]:
        c = self._client
        threading.Thread(target=self._watchdog, daemon=True, name="digest-watchdog").start()
        try:
            for chunk in self._call:
                self._last = time.monotonic()
                yield chunk
        except grpc.RpcError as e:
            if self._cancelled:
                return
            if self._stalled:
                detail = f"no data for {self._idle:g}s (agent hung?)"
                raise AgentUnavailable(c.node_id, c.address, detail) from None
            raise c.error(e) from None
        finally:
            self._done.set()
            self._call.cancel()  # no-op when finished; frees the stream if abandoned


def tls_files(
    config: ClusterConfig,
    ca: StrPath | None = None,
    cert: StrPath | None = None,
    key: StrPath | None = None,
    node: str | None = None,
) -> TlsFiles:
    """The client's TLS files: explicit paths win, else the config's [tls] paths with
    ``{node}`` = this machine's node (an agent's own certificate works as a client too).

    ``node`` (--node), $MIRRORPAIR_NODE or address detection say which node this is;
    they are only consulted when a path needs ``{node}``.
    """
    tls = config.tls
    needs_node = any(
        given is None and "{node}" in value
        for given, value in ((ca, tls.ca), (cert, tls.cert), (key, tls.key))
    )
    paths = config.paths_for(local_node(config, node) if needs_node else "")
    return TlsFiles(
        ca=Path(ca) if ca is not None else paths.ca,
        cert=Path(cert) if cert is not None else paths.cert,
        key=Path(key) if key is not None else paths.key,
    )


def connect_cluster(
    config_or_args: ClusterConfig | argparse.Namespace,
    tls: TlsFiles | None = None,
    timeout: float = 5.0,
) -> dict[str, AgentClient]:
    """A client for each node of the cluster, keyed by node id.

    Given parsed CLI args (``config``, ``ca``, ``cert``, ``key``, ``local_node``, ``timeout``),
    the config is loaded and the TLS files resolved as the CLI does; given a
    ``ClusterConfig``, ``tls`` must say which files to use.
    """
    if isinstance(config_or_args, argparse.Namespace):
        args = config_or_args
        config = load_config(args.config)
        node = getattr(args, "local_node", None) or getattr(args, "node", None)
        tls = tls or tls_files(config, args.ca, args.cert, args.key, node)
        timeout = getattr(args, "timeout", None) or timeout
    else:
        config = config_or_args
    if tls is None:
        raise ValueError("connect_cluster needs the TLS files when given a ClusterConfig")
    return {
        node: AgentClient.for_node(node, config.nodes[node].api, tls, timeout) for node in NODE_IDS
    }


def ask_all(
    clients: dict[str, AgentClient], call: Callable[[AgentClient], T]
) -> dict[str, T | AgentClientError]:
    """``call`` on every client in parallel (one dead agent must not double the wait);
    each node maps to its result or its error."""

    def one(client: AgentClient) -> T | AgentClientError:
        try:
            return call(client)
        except AgentClientError as e:
            return e

    with ThreadPoolExecutor(max_workers=max(1, len(clients))) as pool:
        futures = {node: pool.submit(one, c) for node, c in clients.items()}
        return {node: f.result() for node, f in futures.items()}
