"""``mirrorpair demo``: a two-node cluster on this machine (see node_agent.demo)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="run a two-node demo cluster on this machine",
        description="Create a CA, certificates, a cluster config and a sample web module in a "
        "temporary folder, start two agents (127.0.0.1 and 127.0.0.2) and keep them running "
        "until Ctrl-C. No virtual IP (that needs root).",
    )
    demo.add_argument(
        "--dir",
        type=Path,
        metavar="DIR",
        help="use DIR (new or empty) instead of a temporary folder",
    )
    demo.add_argument("--keep", action="store_true", help="keep the folder at exit")
    demo.add_argument("--no-console", action="store_true", help="do not open the desktop console")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from node_agent.demo import run_demo  # imported late: keeps `mirrorpair --help` fast

    return run_demo(args.dir, keep=args.keep, console=not args.no_console)
