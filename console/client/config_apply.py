"""A configuration applied to both servers or to neither (DESIGN §7, issue 12 point 6):
PrepareConfig on both at once; CommitConfig on both only if both accepted, else
AbortConfig on whichever accepted. Qt-free: the setup wizard, the console's editor and
``mirrorpair config`` all use it.

A node that cannot be reached, or does not answer in time, refuses (with the reason).
If a commit fails after the other node committed (the console lost that node between
the two phases), the outcome says so and which version each node runs: applying the same
text again finishes the job (a node running that very text accepts it and changes
nothing; node_agent/config/changes.py).
"""

from __future__ import annotations

import asyncio
import tomllib
import uuid
from collections.abc import Awaitable
from typing import TypeVar

import grpc

from console.setup.backend import ApplyOutcome
from protos import mirrorpair_pb2 as pb
from protos import mirrorpair_pb2_grpc as pb_grpc

T = TypeVar("T")
PREPARE_TIMEOUT_S = 15.0
# A commit stops and starts the modules it changes (a VM's clean shutdown can take minutes).
COMMIT_TIMEOUT_S = 300.0
ABORT_TIMEOUT_S = 5.0


def _reason(error: BaseException, timeout_s: float) -> str:
    if isinstance(error, TimeoutError):
        return f"unreachable: no answer within {timeout_s:g} s"
    if isinstance(error, grpc.aio.AioRpcError):
        code, details = error.code(), error.details() or ""
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            return f"unreachable: no answer within {timeout_s:g} s (agent hung?)"
        if code is grpc.StatusCode.UNAVAILABLE:
            return f"unreachable: {details or 'unavailable'}"
        return f"{details} ({code.name})" if details else code.name
    return f"{type(error).__name__}: {error}"


async def _call(call: Awaitable[T], timeout_s: float) -> T:
    # The gRPC deadline ends the call on the agent too; ours bounds a hanging connect.
    async with asyncio.timeout(timeout_s + 1.0):
        return await call


def text_version(toml_text: str) -> int:
    """The [cluster] version a text declares (0 when it says none or does not parse)."""
    try:
        value = tomllib.loads(toml_text).get("cluster", {}).get("version", 0)
    except (tomllib.TOMLDecodeError, AttributeError):
        return 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


async def apply_both(
    stubs: dict[str, pb_grpc.AgentStub],
    toml_text: str,
    expected: dict[str, int],
    *,
    secret: str = "",
    prepare_timeout_s: float = PREPARE_TIMEOUT_S,
    commit_timeout_s: float = COMMIT_TIMEOUT_S,
) -> ApplyOutcome:
    """Prepare ``toml_text`` on every node of ``stubs``, then commit on all or abort.
    ``expected``: the version each node is believed to run (missing = 0); ``secret``:
    the cluster secret when the text hides it (``secret = "***"``) and the nodes must
    take this one (empty: each keeps its own)."""
    transaction = uuid.uuid4().hex
    version = text_version(toml_text)
    nodes = sorted(stubs)

    async def prepare(node: str) -> pb.PrepareConfigReply | str:
        request = pb.PrepareConfigRequest(toml=toml_text, transaction=transaction,
                                          expected_version=expected.get(node, 0),
                                          secret=secret)  # fmt: skip
        try:
            call = stubs[node].PrepareConfig(request, timeout=prepare_timeout_s)
            return await _call(call, prepare_timeout_s)
        except (grpc.aio.AioRpcError, TimeoutError) as e:
            return _reason(e, prepare_timeout_s)

    prepared = dict(zip(nodes, await asyncio.gather(*(prepare(n) for n in nodes)), strict=True))
    refused = {
        n: r if isinstance(r, str) else r.error or "refused"
        for n, r in prepared.items()
        if isinstance(r, str) or not r.accepted
    }
    if refused:
        accepted = [n for n in nodes if n not in refused]
        await asyncio.gather(*(_abort(stubs[n], transaction) for n in accepted))
        return ApplyOutcome(False, version, refused=refused)

    async def commit(node: str) -> pb.CommitConfigReply | str:
        request = pb.CommitConfigRequest(transaction=transaction)
        try:
            call = stubs[node].CommitConfig(request, timeout=commit_timeout_s)
            return await _call(call, commit_timeout_s)
        except (grpc.aio.AioRpcError, TimeoutError) as e:
            return f"commit failed: {_reason(e, commit_timeout_s)}"

    committed = dict(zip(nodes, await asyncio.gather(*(commit(n) for n in nodes)), strict=True))
    failed = {n: r for n, r in committed.items() if isinstance(r, str)}
    changes = {n: tuple(r.changes) for n, r in committed.items() if not isinstance(r, str)}
    if failed and changes:  # half done: say what runs where and how to finish
        done = ", ".join(sorted(changes))
        failed = {n: f"{why}; {done} already runs version {version}: apply the same text "
                  "again to finish" for n, why in failed.items()}  # fmt: skip
    return ApplyOutcome(not failed, version, refused=failed, changes=changes)


async def _abort(stub: pb_grpc.AgentStub, transaction: str) -> None:
    """Best effort: a prepare not aborted expires on the agent anyway."""
    try:
        call = stub.AbortConfig(pb.AbortConfigRequest(transaction=transaction),
                                timeout=ABORT_TIMEOUT_S)  # fmt: skip
        await _call(call, ABORT_TIMEOUT_S)
    except (grpc.aio.AioRpcError, TimeoutError):
        pass
