"""``mirrorpair demo``: a two-node cluster on this machine (see node_agent.demo), and
``mirrorpair demo kill|restart NODE`` to crash and revive one of its agents."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from node_agent.cli.exits import Exit


def add_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="run a two-node demo cluster on this machine",
        description="Create a CA, certificates, a cluster config and sample modules in a "
        "temporary folder, start two agents (127.0.0.1 and 127.0.0.2) and keep them running "
        "until Ctrl-C. The module 'web' is a page naming the node that serves it; "
        "'recorder' (where FUSE can be used: as root) writes into a replicated directory. "
        "No virtual IP (that needs root). "
        "While it runs, `mirrorpair demo kill NODE` SIGKILLs that node's agent (a crash) "
        "and `mirrorpair demo restart NODE` starts it again.",
    )
    demo.add_argument(
        "action",
        nargs="?",
        choices=["run", "kill", "restart"],
        default="run",
        help="run (default): the demo; kill / restart NODE: act on a running demo's agent",
    )
    demo.add_argument("node", nargs="?", metavar="NODE", help="node1 or node2 (kill, restart)")
    demo.add_argument(
        "--dir",
        type=Path,
        metavar="DIR",
        help="run: use DIR (new or empty) instead of a temporary folder; kill/restart: the "
        "running demo's folder (default: the folder of --config, or the only running demo)",
    )
    demo.add_argument("--keep", action="store_true", help="keep the folder at exit")
    demo.add_argument("--no-console", action="store_true", help="do not open the desktop console")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    if args.action == "run":
        if args.node is not None:
            print(f"error: unexpected {args.node!r}: only kill and restart take a node",
                  file=sys.stderr)  # fmt: skip
            return Exit.USAGE
        from node_agent.demo import run_demo  # imported late: keeps `mirrorpair --help` fast

        return run_demo(args.dir, keep=args.keep, console=not args.no_console)
    return _control(args)


def _control(args: argparse.Namespace) -> int:
    from node_agent.demo_control import DemoControlError, DemoRefused, find_demo, send

    if args.node not in ("node1", "node2"):
        print(f"error: demo {args.action} needs NODE: node1 or node2", file=sys.stderr)
        return Exit.USAGE
    try:
        root = find_demo(args.dir, Path(args.config) if args.config else None)
        print(send(root, args.action, args.node))
    except DemoControlError as e:
        print(f"error: {e}", file=sys.stderr)
        return Exit.REFUSED if isinstance(e, DemoRefused) else Exit.LOCAL
    return Exit.OK
