"""The Pairing gRPC service (DESIGN §7), and the Agent service's stand-in while pairing
is open: then the server asks for no client certificate, so every Agent call is refused
with a message saying why instead of grpc's bare "method not found"."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from node_agent.host.pairing import BadPairingRequest, CodeRefused, Pairing, PairingClosed
from protos import mirrorpair_pb2 as pb
from protos import mirrorpair_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


class PairingServicer(pb_grpc.PairingServicer):
    def __init__(
        self,
        pairing: Pairing,
        host_info: Callable[[], Awaitable[pb.HostInfo]],
        on_paired: Callable[[], None],
    ) -> None:
        self._pairing = pairing
        self._host_info = host_info
        self._on_paired = on_paired

    async def GetHostInfo(
        self, request: pb.HostInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.HostInfo:
        return await self._host_info()

    async def BeginPairing(
        self, request: pb.BeginPairingRequest, context: grpc.aio.ServicerContext
    ) -> pb.BeginPairingReply:
        try:
            csr = self._pairing.begin(
                request.code, request.node_id, request.cluster_name, request.ca_cert,
                list(request.addresses),
            )  # fmt: skip
        except Exception as e:
            await _refuse(context, "BeginPairing", e)
            raise
        return pb.BeginPairingReply(csr=csr)

    async def CompletePairing(
        self, request: pb.CompletePairingRequest, context: grpc.aio.ServicerContext
    ) -> pb.CompletePairingReply:
        try:
            fp = self._pairing.complete(request.code, request.certificate)
        except Exception as e:
            await _refuse(context, "CompletePairing", e)
            raise
        self._on_paired()  # switches the server to the cluster's mTLS after this reply
        return pb.CompletePairingReply(fingerprint=fp)


async def _refuse(context: grpc.aio.ServicerContext, call: str, error: Exception) -> None:
    if isinstance(error, CodeRefused):
        code = grpc.StatusCode.RESOURCE_EXHAUSTED if error.cooldown_s else (
            grpc.StatusCode.PERMISSION_DENIED)  # fmt: skip
        log.warning("%s refused: %s (from %s)", call, error, context.peer())
        # The client reads attempts left / cool-down from the trailing metadata.
        context.set_trailing_metadata(
            (("attempts-left", str(error.attempts_left)),
             ("cooldown-s", f"{error.cooldown_s:.0f}"))
        )  # fmt: skip
        await context.abort(code, str(error))
    if isinstance(error, PairingClosed):
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
    if isinstance(error, BadPairingRequest):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
    log.exception("%s failed", call)
    await context.abort(grpc.StatusCode.INTERNAL, f"{call} failed in the agent: {error}")


PAIRING_OPEN_MESSAGE = (
    "pairing is open on this server: it answers only the pairing calls until the "
    "console's setup wizard pairs it"
)


def closed_agent_servicer() -> pb_grpc.AgentServicer:
    """An Agent servicer whose every call is refused: UNAUTHENTICATED, saying why."""

    async def refuse(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, PAIRING_OPEN_MESSAGE)

    methods = {name: refuse for name in pb.DESCRIPTOR.services_by_name["Agent"].methods_by_name}
    return type("ClosedAgentServicer", (pb_grpc.AgentServicer,), methods)()
