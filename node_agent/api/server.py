"""The agent's gRPC server: the Agent service, health checking and reflection, over mTLS."""

from __future__ import annotations

import socket

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from node_agent.api.engine_api import EngineApi
from node_agent.api.health_board import HealthBoard
from node_agent.api.servicer import AgentServicer
from node_agent.config.configurator import Configurator
from protos import mirrorpair_pb2 as pb
from protos import mirrorpair_pb2_grpc as pb_grpc
from protos.security.credentials import TlsPaths, server_credentials

AGENT_SERVICE = pb.DESCRIPTOR.services_by_name["Agent"].full_name  # "mirrorpair.v1.Agent"
PAIRING_SERVICE = pb.DESCRIPTOR.services_by_name["Pairing"].full_name

SERVER_OPTIONS: list[tuple[str, int]] = [
    # grpc enables SO_REUSEPORT by default: a second agent (or a stale one) could then bind
    # the same port and silently share the traffic. A taken port must be a bind error.
    ("grpc.so_reuseport", 0),
    # Ping idle watch streams so a console that vanished (laptop closed) is noticed.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


class ApiBindError(OSError):
    """The API address could not be bound (in use, not an address of this machine...)."""

    def __init__(self, address: str, detail: str) -> None:
        self.address = address
        super().__init__(f"cannot listen on API address {address}: {detail}")


async def start_server(
    engine: EngineApi, address: str, tls_paths: TlsPaths, configurator: Configurator | None = None
) -> grpc.aio.Server:
    """Serve the Agent API on ``address`` (host:port) and return the started server.

    Client certificates signed by the cluster CA are required (``server_credentials``);
    a bad TLS file raises ``TlsError``, a bind failure ``ApiBindError`` naming the address.
    Stop it with ``await server.stop(grace)``.
    """
    credentials = server_credentials(tls_paths)  # before binding: file errors read better
    return await serve_services(
        address, credentials, AgentServicer(engine, configurator=configurator)
    )


async def serve_services(
    address: str,
    credentials: grpc.ServerCredentials,
    agent: pb_grpc.AgentServicer,
    pairing: pb_grpc.PairingServicer | None = None,
    health_board: HealthBoard | None = None,
) -> grpc.aio.Server:
    """A started server of the Agent service (and Pairing, when given), with health
    checking (what ``health_board`` says; without one, SERVING) and reflection;
    ApiBindError naming the address when it cannot bind."""
    server = grpc.aio.server(options=SERVER_OPTIONS)
    pb_grpc.add_AgentServicer_to_server(agent, server)
    services = [AGENT_SERVICE]
    if pairing is not None:
        pb_grpc.add_PairingServicer_to_server(pairing, server)
        services.append(PAIRING_SERVICE)

    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if health_board is not None:  # the agent's real state (api/health_board.py)
        await health_board.attach(health_servicer, services)
    else:
        for service in (health.OVERALL_HEALTH, *services):
            await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)

    reflection.enable_server_reflection(
        [*services, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    try:
        port = server.add_secure_port(address, credentials)
    except RuntimeError:  # grpc's own message only says "Failed to bind" and how to debug it
        port = 0
    if port == 0:
        raise ApiBindError(address, _bind_detail(address))
    await server.start()
    return server


def _bind_detail(address: str) -> str:
    """Why binding failed, found by trying a plain socket bind (grpc does not say)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host or None, int(port), type=socket.SOCK_STREAM)
    except (OSError, ValueError) as e:
        return f"cannot resolve it: {e}"
    for family, kind, proto, _name, sockaddr in infos:
        try:
            with socket.socket(family, kind, proto) as s:
                s.bind(sockaddr)
        except OSError as e:
            hint = {98: "another process uses the port", 99: "not an address of this machine"}
            return f"{e.strerror or e}" + (f" ({hint[e.errno]})" if e.errno in hint else "")
    return "gRPC refused the address"
