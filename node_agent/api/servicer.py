"""The Agent gRPC service (DESIGN §7): proto requests in, ``EngineApi`` calls out.

A thin driver: it validates requests, names the caller (its certificate CN) and
masks the cluster secret; every decision is the engine's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from node_agent.api.config_service import ConfigServiceMixin
from node_agent.api.engine_api import (
    BadDigestRequest,
    DigestRefused,
    EngineApi,
    UnknownModule,
)
from node_agent.config.configurator import Configurator
from node_agent.resources.common import ResourceError
from protos import mirrorpair_pb2 as pb
from protos import mirrorpair_pb2_grpc as pb_grpc
from protos.security.credentials import peer_common_name, peer_role
from protos.security.roles import COMMAND_ROLES, RPC_ROLES, Role, allows, refusal

log = logging.getLogger(__name__)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_LOG_LIMIT = 200
MAX_LOG_LIMIT = 10_000
SECRET_MASK = "***"
MIN_KEEPALIVE_S = 0.2

# `secret = <any TOML string>`, also inside comments (an old secret left in a comment is
# still a secret). Multi-line forms first so `"""` is not read as an empty string + quote.
_SECRET_RE = re.compile(
    r"""(?<![\w-])(["']?secret["']?\s*=\s*)"""
    r"""(\"\"\"[\s\S]*?\"\"\"(?!")|'''[\s\S]*?'''(?!')|"(?:[^"\\\n]|\\.)*"|'[^'\n]*')"""
)


def mask_secret(toml_text: str, secret: bytes | str = b"") -> str:
    """The config text with every ``secret = "..."`` value replaced by ``"***"``.

    ``secret`` (the parsed value), when given, is also blanked wherever it still
    appears verbatim, as a second line of defence against forms the pattern misses.
    """
    masked = _SECRET_RE.sub(lambda m: f'{m[1]}"{SECRET_MASK}"', toml_text)
    value = secret.decode("utf-8", "replace") if isinstance(secret, bytes) else secret
    if value:
        masked = masked.replace(value, SECRET_MASK)
    return masked


def _secret_of(toml_text: str) -> str:
    """The parsed cluster secret, or "" (the text may not parse: mask by pattern only)."""
    try:
        value = tomllib.loads(toml_text).get("cluster", {}).get("secret", "")
    except (tomllib.TOMLDecodeError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""


def _module_names(status: pb.NodeStatus) -> list[str]:
    return [m.name for m in status.modules]


class AgentServicer(ConfigServiceMixin, pb_grpc.AgentServicer):
    """grpc.aio implementation of ``mirrorpair.v1.Agent`` on top of an ``EngineApi``
    (configuration changes: ``ConfigServiceMixin``, node_agent/api/config_service.py)."""

    def __init__(
        self,
        engine: EngineApi,
        host_info: Callable[[], Awaitable[pb.HostInfo]] | None = None,
        configurator: Configurator | None = None,
    ) -> None:
        self._engine = engine
        self._host_info = host_info
        self._configurator = configurator

    async def GetHostInfo(
        self, request: pb.HostInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.HostInfo:
        if self._host_info is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "no host information here")
        return await self._host_info()  # type: ignore[misc]

    async def ProbeHost(
        self, request: pb.ProbeHostRequest, context: grpc.aio.ServicerContext
    ) -> pb.ProbeHostReply:
        from node_agent.host.facts import probe

        await require_role(context, RPC_ROLES["ProbeHost"], "probing the server")
        return await probe(request)

    async def GetStatus(
        self, request: pb.GetStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.NodeStatus:
        try:
            status = self._engine.status()
        except Exception as e:  # an engine bug must reach the client as a readable error
            await _internal(context, "GetStatus", e)
            raise  # unreachable: abort raises
        status.client_role = int(peer_role(context))  # type: ignore[assignment]
        return status

    async def WatchStatus(
        self, request: pb.WatchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StatusEvent]:
        level = request.log_level.strip().upper()
        if level and level not in LOG_LEVELS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _bad_level(request.log_level))
        keepalive = min(max(request.keepalive_s, MIN_KEEPALIVE_S), 3600.0)
        events = aiter(self._engine.watch(level))
        pending: asyncio.Future[pb.StatusEvent] | None = None
        seq = 0  # renumbered per stream: keepalive snapshots are events too
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(events))
                done, _ = await asyncio.wait(
                    {pending}, timeout=keepalive if request.keepalive_s > 0 else None
                )
                event = pb.StatusEvent()
                try:
                    if done:
                        # A copy: the engine may hand the same event to every watcher.
                        event.CopyFrom(pending.result())
                        pending = None
                    else:  # quiet: a fresh snapshot tells the client we are alive
                        event.status.CopyFrom(self._engine.status())
                except StopAsyncIteration:  # the engine is shutting down
                    return
                except Exception as e:
                    await _internal(context, "WatchStatus", e)
                seq += 1
                event.seq = seq
                yield event
        finally:
            # The client cancelled (grpc cancels this task) or the stream ended: stop the
            # engine's generator at once so it drops its subscription.
            if pending is not None and not pending.done():
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    async def RunCommand(
        self, request: pb.CommandRequest, context: grpc.aio.ServicerContext
    ) -> pb.CommandReply:
        if not request.module:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "module is required")
        if request.command == pb.COMMAND_UNSPECIFIED or request.command not in pb.Command.values():
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"command must be one of {', '.join(_command_names())}, got {request.command}",
            )
        if request.fullsync and request.command != pb.COMMAND_SECOND:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "fullsync only applies to the second command"
            )
        command = _command_names()[request.command - 1]
        await require_role(context, COMMAND_ROLES[request.command], command)
        names = _module_names(self._engine.status())
        if request.module not in names:
            await context.abort(grpc.StatusCode.NOT_FOUND, _unknown_module(request.module, names))
        cn = peer_common_name(context) or "no certificate"
        who = f"{request.issued_by.strip() or 'unknown'} (cert {cn})"
        try:
            outcome = await self._engine.command(
                request.module, request.command, who, request.fullsync
            )
        except Exception as e:
            await _internal(context, "RunCommand", e)
            raise
        reply = pb.CommandReply(accepted=outcome.accepted, message=outcome.message)
        for m in self._engine.status().modules:
            if m.name == request.module:
                reply.module.CopyFrom(m)
        return reply

    async def GetLogs(
        self, request: pb.GetLogsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetLogsReply:
        level = request.min_level.strip().upper() or "INFO"
        if level not in LOG_LEVELS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _bad_level(request.min_level))
        if request.module:
            names = _module_names(self._engine.status())
            if request.module not in names:
                msg = _unknown_module(request.module, names)
                await context.abort(grpc.StatusCode.NOT_FOUND, msg)
        limit = min(request.limit or DEFAULT_LOG_LIMIT, MAX_LOG_LIMIT)
        try:
            entries = self._engine.logs(request.module, limit, level, request.text)
        except Exception as e:
            await _internal(context, "GetLogs", e)
            raise
        return pb.GetLogsReply(entries=entries)

    async def GetConfig(
        self, request: pb.GetConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetConfigReply:
        found = await self._config_text(request.version, context)
        try:
            text, version, path = found or self._engine.config_text()
        except Exception as e:
            await _internal(context, "GetConfig", e)
            raise
        if found is None and request.version not in (0, version):
            msg = f"version {request.version} is not kept on this node (it runs {version})"
            await context.abort(grpc.StatusCode.NOT_FOUND, msg)
        # The cluster secret authenticates heartbeats: it must never leave the node.
        return pb.GetConfigReply(
            toml=mask_secret(text, _secret_of(text)), version=version, path=path
        )

    async def ListVms(
        self, request: pb.ListVmsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListVmsReply:
        try:
            vms = await self._engine.list_vms(request.libvirt_uri)
        except ResourceError as e:  # libvirt missing or not running: say so
            # FAILED_PRECONDITION, not UNAVAILABLE: the agent answered, libvirt did not.
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
        except Exception as e:
            await _internal(context, "ListVms", e)
            raise
        return pb.ListVmsReply(vms=vms)

    async def AdoptVm(
        self, request: pb.AdoptVmRequest, context: grpc.aio.ServicerContext
    ) -> pb.AdoptVmReply:
        await require_role(context, RPC_ROLES["AdoptVm"], "vm adopt")
        if not request.domain or not request.directory:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "domain and directory are required")  # fmt: skip
        try:
            return await self._engine.adopt_vm(request)
        except ResourceError as e:  # refused as it is, libvirt unreachable, a move failed
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
        except Exception as e:
            await _internal(context, "AdoptVm", e)
            raise
        raise AssertionError("unreachable")  # abort() raises

    async def DigestModule(
        self, request: pb.DigestRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.DigestChunk]:
        if not request.module:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "module is required")
        names = _module_names(self._engine.status())
        if request.module not in names:
            await context.abort(grpc.StatusCode.NOT_FOUND, _unknown_module(request.module, names))
        chunks = aiter(self._engine.digest(request.module, request.zone_size, request.algorithm))
        refused: DigestRefused | None = None
        failed: Exception | None = None
        try:
            # abort() raises, so it must not be called inside this try (it would be caught).
            async for chunk in chunks:
                yield chunk
        except DigestRefused as e:
            refused = e
        except Exception as e:
            log.exception("DigestModule failed")
            failed = e
        finally:
            # A cancelled stream (client gone) closes the engine's generator at once: the
            # scan stops after its current bounded step.
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        if refused is not None:
            await context.abort(_digest_code(refused), str(refused))
        if failed is not None:
            msg = f"DigestModule failed in the agent: {failed}"
            await context.abort(grpc.StatusCode.INTERNAL, msg)


def _digest_code(error: DigestRefused) -> grpc.StatusCode:
    if isinstance(error, UnknownModule):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(error, BadDigestRequest):
        return grpc.StatusCode.INVALID_ARGUMENT
    return grpc.StatusCode.FAILED_PRECONDITION  # NoReplicatedDirectories and the like


async def require_role(context: grpc.aio.ServicerContext, needed: Role, what: str) -> None:
    """Abort with PERMISSION_DENIED, naming the missing role, unless the caller has it."""
    role = peer_role(context)
    if not allows(role, needed):
        who = peer_common_name(context) or "no certificate"
        log.warning("refused %s from certificate %s (role %s)", what, who, role.label)
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, refusal(role, needed, what, who))


async def _internal(context: grpc.aio.ServicerContext, call: str, error: Exception) -> None:
    log.exception("%s failed", call)
    await context.abort(grpc.StatusCode.INTERNAL, f"{call} failed in the agent: {error}")


def _command_names() -> list[str]:
    return [n.removeprefix("COMMAND_").lower() for n in pb.Command.keys()[1:]]


def _bad_level(value: str) -> str:
    return f"log level must be one of {', '.join(LOG_LEVELS)}, got {value!r}"


def _unknown_module(name: str, known: list[str]) -> str:
    listed = ", ".join(known) if known else "none"
    return f"unknown module {name!r} (modules on this node: {listed})"
