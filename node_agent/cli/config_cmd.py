"""`mirrorpair config`: apply a configuration to both nodes or neither, list the versions
each node keeps, restore an earlier one (DESIGN §7; console/client/config_apply.py does
the two phases, as for the console)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import grpc

from console.client.config_apply import apply_both
from console.setup.backend import ApplyOutcome
from console.setup.versions import with_version
from node_agent.cli.commands import Context
from node_agent.cli.exits import Exit
from node_agent.config.model import NODE_IDS
from protos import mirrorpair_pb2 as pb
from protos import mirrorpair_pb2_grpc as pb_grpc
from protos.security.credentials import aio_secure_channel, channel_credentials, server_name


def add_parsers(sub: Any) -> None:
    cfg = sub.add_parser("config", help="apply, list and restore configuration versions",
                         description="The cluster configuration on both nodes.")  # fmt: skip
    csub = cfg.add_subparsers(dest="config_command", metavar="CONFIGCOMMAND", required=True)
    ap = csub.add_parser(
        "apply", help="apply FILE to both nodes, or to neither",
        description="Send FILE to both agents (prepare), then make both run it (commit) "
        "only if both accepted; otherwise neither changes and the refusal is printed, per "
        "node. FILE's [cluster] version must be greater than the running one. Modules it "
        "does not touch keep running. A secret written as \"***\" keeps each node's own. "
        "Exit 0 applied, 13 refused, 10 a node unreachable.",
    )  # fmt: skip
    ap.add_argument("file", metavar="FILE", type=Path, help="the whole new cluster file")
    ap.set_defaults(handler=cmd_config_apply)
    vs = csub.add_parser("versions", help="the versions each node keeps",
                         description="Every configuration version each node keeps, newest "
                         "first: when it was applied there and by which certificate.")  # fmt: skip
    vs.set_defaults(handler=cmd_config_versions)
    rs = csub.add_parser(
        "restore", help="apply an earlier version again, as a new version",
        description="Take version N's text (as a node keeps it) and apply it to both nodes "
        "as a new version (the greatest running + 1). Exit codes as for apply.",
    )  # fmt: skip
    rs.add_argument("version", metavar="N", type=int, help="the kept version to restore")
    rs.set_defaults(handler=cmd_config_restore)
    sh = csub.add_parser("show", help="print the configuration a node runs (or kept)",
                         description="Print the configuration text --node runs (default: "
                         "node1), or its kept version N; the secret shows as \"***\".")  # fmt: skip
    sh.add_argument("--version", dest="config_version", type=int, default=0, metavar="N",
                    help="a kept version (default: the running one)")  # fmt: skip
    sh.add_argument("--node", dest="target_node", choices=NODE_IDS, default=NODE_IDS[0],
                    help="the node to ask (default node1)")  # fmt: skip
    sh.set_defaults(handler=cmd_config_show)


class _Stubs:
    """An aio stub per node, over the CLI's TLS files."""

    def __init__(self, ctx: Context) -> None:
        config, tls = ctx.config(), ctx.tls()
        creds = channel_credentials(tls.ca, tls.cert, tls.key)
        self.timeout = ctx.args.timeout
        self.channels = {n: aio_secure_channel(config.nodes[n].api, creds, server_name(n))
                         for n in NODE_IDS}  # fmt: skip
        self.stubs = {n: pb_grpc.AgentStub(c) for n, c in self.channels.items()}

    async def each(self, call: str, request: Any) -> dict[str, Any]:
        async def one(node: str) -> Any:
            try:
                return await getattr(self.stubs[node], call)(request, timeout=self.timeout)
            except grpc.aio.AioRpcError as e:
                return e

        replies = await asyncio.gather(*(one(n) for n in NODE_IDS))
        return dict(zip(NODE_IDS, replies, strict=True))

    async def close(self) -> None:
        for c in self.channels.values():
            await c.close()


def _run(ctx: Context, body: Any) -> int:
    async def main() -> int:
        stubs = _Stubs(ctx)
        try:
            return await body(stubs)
        finally:
            await stubs.close()

    return asyncio.run(main())


def _err(node: str, e: grpc.aio.AioRpcError) -> str:
    return f"{node}: {e.details() or e.code().name}"


async def _apply(stubs: _Stubs, text: str) -> int:
    # What each node runs now: a node changed by someone else since refuses the prepare.
    # A node that does not answer is left to apply_both, which names it and aborts.
    current = await stubs.each("GetConfig", pb.GetConfigRequest())
    expected = {n: r.version for n, r in current.items() if isinstance(r, pb.GetConfigReply)}
    outcome = await apply_both(stubs.stubs, text, expected, prepare_timeout_s=stubs.timeout)
    return _report(outcome)


def _report(outcome: ApplyOutcome) -> int:
    for node in NODE_IDS:
        if node in outcome.refused:
            print(f"{node}: refused: {outcome.refused[node]}", file=sys.stderr)
        elif node in outcome.changes:
            what = "; ".join(outcome.changes[node]) or "no change"
            print(f"{node}: runs version {outcome.version}: {what}")
    if outcome.applied:
        return Exit.OK
    if all(why.startswith("unreachable") for why in outcome.refused.values()):
        return Exit.UNREACHABLE
    if not outcome.changes:
        print("neither node changed", file=sys.stderr)
    return Exit.REFUSED


def cmd_config_apply(ctx: Context, args: argparse.Namespace) -> int:
    try:
        text = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        print(f"error: cannot read {args.file}: {e}", file=sys.stderr)
        return Exit.LOCAL
    return _run(ctx, lambda stubs: _apply(stubs, text))


def cmd_config_versions(ctx: Context, args: argparse.Namespace) -> int:
    async def body(stubs: _Stubs) -> int:
        replies = await stubs.each("ListConfigVersions", pb.ListConfigVersionsRequest())
        failed = 0
        for node, r in replies.items():
            if isinstance(r, grpc.aio.AioRpcError):
                print(f"error: {_err(node, r)}", file=sys.stderr)
                failed += 1
                continue
            print(f"{node}:")
            for v in r.versions:
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v.applied_at))
                who = v.applied_by or "(installed by hand)"
                mark = "  running" if v.running else ""
                print(f"  {v.version:>5}  {when if v.applied_at else '?':19}  {who}{mark}")
        return Exit.UNREACHABLE if failed == len(replies) else Exit.OK

    return _run(ctx, body)


def cmd_config_restore(ctx: Context, args: argparse.Namespace) -> int:
    async def body(stubs: _Stubs) -> int:
        current = await stubs.each("GetConfig", pb.GetConfigRequest())
        old = await stubs.each("GetConfig", pb.GetConfigRequest(version=args.version))
        texts = [r.toml for r in old.values() if not isinstance(r, grpc.aio.AioRpcError)]
        if not texts:
            for node, e in old.items():
                print(f"error: {_err(node, e)}", file=sys.stderr)
            return Exit.REFUSED
        running = [r.version for r in current.values() if not isinstance(r, grpc.aio.AioRpcError)]
        new = max(running, default=args.version) + 1
        print(f"restoring version {args.version} as version {new}")
        return await _apply(stubs, with_version(texts[0], new))

    return _run(ctx, body)


def cmd_config_show(ctx: Context, args: argparse.Namespace) -> int:
    async def body(stubs: _Stubs) -> int:
        request = pb.GetConfigRequest(version=args.config_version)
        try:
            reply = await stubs.stubs[args.target_node].GetConfig(request, timeout=stubs.timeout)
        except grpc.aio.AioRpcError as e:
            print(f"error: {_err(args.target_node, e)}", file=sys.stderr)
            unavailable = e.code() in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
            )
            return Exit.UNREACHABLE if unavailable else Exit.REFUSED
        print(reply.toml, end="" if reply.toml.endswith("\n") else "\n")
        return Exit.OK

    return _run(ctx, body)
