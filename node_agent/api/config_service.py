"""The Agent service's configuration calls (issue 12, point 6): PrepareConfig,
CommitConfig, AbortConfig, ListConfigVersions and GetConfig of any kept version. A mixin
of ``AgentServicer``; the decisions are node_agent/config/configurator.py's.
"""

from __future__ import annotations

import logging

import grpc

from node_agent.config.configurator import Configurator, Refused, UnknownTransaction
from protos import mirrorpair_pb2 as pb
from protos.security.credentials import peer_common_name
from protos.security.roles import RPC_ROLES

log = logging.getLogger(__name__)


def caller(context: grpc.aio.ServicerContext) -> str:
    return f"cert {peer_common_name(context) or 'no certificate'}"


class ConfigServiceMixin:
    _configurator: Configurator | None

    async def _configuration(self, context: grpc.aio.ServicerContext, rpc: str) -> Configurator:
        from node_agent.api.servicer import require_role  # servicer imports this module

        if rpc in RPC_ROLES:
            await require_role(context, RPC_ROLES[rpc], f"configuration ({rpc})")
        if self._configurator is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                                "this agent does not take configuration changes")  # fmt: skip
        assert self._configurator is not None
        return self._configurator

    async def PrepareConfig(
        self, request: pb.PrepareConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.PrepareConfigReply:
        c = await self._configuration(context, "PrepareConfig")
        try:
            done = c.prepare(request.toml, request.transaction, request.expected_version,
                             request.secret, caller(context))  # fmt: skip
        except Refused as e:
            return pb.PrepareConfigReply(accepted=False, error=str(e))
        except Exception as e:  # a bug: the console must see a refusal it can show
            log.exception("PrepareConfig failed")
            return pb.PrepareConfigReply(accepted=False, error=f"prepare failed on the agent: {e}")
        return pb.PrepareConfigReply(accepted=True, version=done.version, changes=done.changes)

    async def CommitConfig(
        self, request: pb.CommitConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.CommitConfigReply:
        c = await self._configuration(context, "CommitConfig")
        try:
            done = await c.commit(request.transaction, caller(context))
        except UnknownTransaction as e:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
        except Exception as e:
            log.exception("CommitConfig failed")
            await context.abort(grpc.StatusCode.INTERNAL, f"commit failed on the agent: {e}")
        return pb.CommitConfigReply(version=done.version, changes=done.changes)

    async def AbortConfig(
        self, request: pb.AbortConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.AbortConfigReply:
        c = await self._configuration(context, "AbortConfig")
        c.abort(request.transaction, caller(context))
        return pb.AbortConfigReply()

    async def ListConfigVersions(
        self, request: pb.ListConfigVersionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListConfigVersionsReply:
        c = await self._configuration(context, "ListConfigVersions")
        return pb.ListConfigVersionsReply(
            versions=[
                pb.ConfigVersionInfo(
                    version=v.version,
                    applied_at=v.applied_at,
                    applied_by=v.applied_by,
                    running=v.running,
                )  # fmt: skip
                for v in c.versions()
            ]
        )

    async def _config_text(self, version: int, context: grpc.aio.ServicerContext
                           ) -> tuple[str, int, str] | None:  # fmt: skip
        """GetConfig's text from the configurator, None to ask the engine (no configurator)."""
        if self._configurator is None:
            return None
        try:
            return self._configurator.text(version)
        except KeyError as e:
            await context.abort(grpc.StatusCode.NOT_FOUND, e.args[0] if e.args else str(e))
        raise AssertionError("unreachable")  # abort() raises
