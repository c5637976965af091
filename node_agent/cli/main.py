"""`mirrorpair`: the admin command line (DESIGN §3, §7)."""

# ruff: noqa: E402
from __future__ import annotations

import os

# grpc's C core logs every refused TLS handshake to stderr at INFO; the CLI reports
# those itself, readably. Must be set before grpc is imported.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import argparse
import difflib
import importlib.metadata
import re
import sys
from collections.abc import Sequence

from node_agent.cli import ca_cmd, config_cmd, console_cmd, demo_cmd, verify_cmd, vm_cmd
from node_agent.cli.commands import Context, cmd_log, cmd_module, cmd_state, cmd_status
from node_agent.cli.exits import EPILOG, Exit
from node_agent.cli.select import COMMANDS, NEEDS_NODE, ON_PRIMARY, SelectionError
from node_agent.config.load import ConfigError
from node_agent.config.model import NODE_IDS
from protos.security.ca import TlsError

DEFAULT_CONFIG = "/etc/mirrorpair/cluster.toml"
WAIT_TIMEOUT_S = 120.0

_HELP = {
    "start": "start the module (on every node where it is stopped)",
    "stop": "stop the module (secondary first, then the primary)",
    "restart": "restart the resource on the primary, no failover",
    "stopstart": "stop then start on the primary (it fails over)",
    "forcestop": "stop at once on one node (--node), no clean handover; asks first",
    "swap": "exchange roles: the secondary becomes primary",
    "migrate": "move the module to the other node (a swap of this module)",
    "prim": "force one node (--node) primary even if not up to date; asks first",
    "second": "start one node (--node) as secondary",
}
_DESCRIPTION = {
    "start": "Start MODULE on every node where it is stopped (or on --node only).",
    "stop": "Stop MODULE cluster-wide: the secondary first, then the primary, so that the "
    "secondary never takes over a module being stopped. --node stops one node only (on the "
    "primary with a ready secondary, the secondary takes over).",
    "restart": "Restart MODULE's resource on its primary, without failing over.",
    "stopstart": "Stop then start MODULE on its primary: the secondary takes over.",
    "forcestop": "Stop MODULE on --node at once, without a clean handover. Asks first: "
    "on a terminal, type y; without one, only --yes lets it go ahead.",
    "swap": "Exchange the roles of MODULE's nodes: stop on the primary, wait until the "
    "secondary has everything, start there. No resync is needed. --wait returns once the "
    "former secondary is PRIM and the former primary SECOND (exit 15 if not by "
    "--wait-timeout).",
    "migrate": "Move MODULE to the other node: a swap of this module alone. --wait as for swap.",
    "prim": "Force --node primary for MODULE even if its copy is not up to date (the admin "
    "accepts the risk; the agents log who did it). Asks first, saying whether the copy is "
    "up to date: on a terminal, type y; without one, only --yes lets it go ahead (exit 14).",
    "second": "Start MODULE on --node as secondary; --fullsync compares everything instead "
    "of only the recorded changes.",
}


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors exit with Exit.USAGE (never a state's 0-5) and that
    suggests the nearest command for a misspelt one."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        bad = re.match(r"argument COMMAND: invalid choice: '([^']*)'", message)
        commands = [
            name
            for action in self._actions
            if isinstance(action, argparse._SubParsersAction)
            for name in action.choices
        ]
        if bad and commands:
            close = difflib.get_close_matches(bad.group(1), commands, n=3, cutoff=0.6)
            message = f"unknown command {bad.group(1)!r}"
            if close:
                message += f"; did you mean {' or '.join(repr(c) for c in close)}?"
            message += f" (commands: {', '.join(commands)})"
        self.exit(Exit.USAGE, f"{self.prog}: error: {message}\n")


def _node(text: str) -> str:
    if text not in NODE_IDS:
        raise argparse.ArgumentTypeError(f"must be node1 or node2, got {text!r}")
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"must be between 0 and 86400 seconds, got {text}")
    return value


def version() -> str:
    try:
        return importlib.metadata.version("mirrorpair")
    except importlib.metadata.PackageNotFoundError:  # a source tree never pip-installed
        from node_agent.engine.node import VERSION

        return VERSION


def _yes_option(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "--yes",
        "-y",
        action="store_true",
        default=default,
        help="answer yes to confirmation questions (needed without a terminal)",
    )


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="mirrorpair",
        description="Manage a MirrorPair cluster through its two agents.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    default_config = os.environ.get("MIRRORPAIR_CONFIG") or DEFAULT_CONFIG
    p.add_argument(
        "--config",
        default=default_config,
        metavar="FILE",
        help=f"cluster config (default $MIRRORPAIR_CONFIG or {DEFAULT_CONFIG})",
    )
    p.add_argument("--cert", help="client certificate (default: the config's [tls] cert)")
    p.add_argument("--key", help="client key (default: the config's [tls] key)")
    p.add_argument("--ca", help="cluster CA certificate (default: the config's [tls] ca)")
    p.add_argument(
        "--node",
        dest="local_node",
        type=_node,
        metavar="NODE",
        help="the node this machine is ($MIRRORPAIR_NODE; default: the node whose API "
        "address is an address of this machine)",
    )
    p.add_argument(
        "--timeout", type=_seconds, default=5.0, metavar="S", help="seconds per agent call"
    )
    _yes_option(p, False)
    sub = p.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)

    state = sub.add_parser(
        "state",
        help="print a module's state here; exit code = state",
        description="Print MODULE's state on this node (or --node) and exit with it: STOP 0, "
        "WAIT 1, ALONE 2, PRIM 3, SECOND 4, UP 5. Failures exit 10 or more (see "
        "mirrorpair --help).",
    )
    state.add_argument("module", metavar="MODULE", help="the module's name")
    state.add_argument(
        "--node",
        dest="target_node",
        type=_node,
        metavar="N",
        help="ask this node instead of the local one",
    )
    state.set_defaults(handler=cmd_state)

    status = sub.add_parser(
        "status",
        help="both nodes, every module",
        description="Both nodes (links, witness) and every module's state on each. --json "
        'prints states as plain names ("PRIM", "READY"; null when unknown) and numbers '
        "as numbers.",
    )
    status.add_argument("--json", action="store_true", help="machine-readable JSON")
    status.set_defaults(handler=cmd_status)

    for command in COMMANDS:
        c = sub.add_parser(command, help=_HELP[command], description=_DESCRIPTION[command])
        c.add_argument("module", metavar="MODULE", help="the module's name")
        where = "default: the primary" if command in ON_PRIMARY else "default: see above"
        c.add_argument(
            "--node",
            dest="target_node",
            type=_node,
            metavar="N",
            required=command in NEEDS_NODE,
            help="the node to act on"
            if command in NEEDS_NODE
            else f"send to this node only ({where})",
        )
        if command == "second":
            c.add_argument(
                "--fullsync",
                action="store_true",
                help="compare everything, not only recorded changes",
            )
        if command in ("swap", "migrate"):
            c.add_argument(
                "--wait",
                action="store_true",
                help="return once the roles have exchanged (printing the transitions)",
            )
            c.add_argument(
                "--wait-timeout",
                type=_seconds,
                default=None,
                metavar="S",
                help="give up waiting after S seconds (implies --wait; "
                f"default {WAIT_TIMEOUT_S:g})",
            )
        _yes_option(c, argparse.SUPPRESS)  # the global --yes stays unless given here too
        c.set_defaults(handler=cmd_module, command=command, fullsync=False)

    log = sub.add_parser(
        "log",
        help="logs of both nodes, merged by time (--follow: keep printing)",
        description="The agents' logs (transitions with their cause and who asked, commands, "
        "resource output), both nodes merged by time. --follow keeps printing new entries "
        "as they are logged, across agent restarts, until Ctrl-C (exit 0).",
    )
    log.add_argument(
        "module",
        metavar="MODULE",
        nargs="?",
        default="",
        help="only this module (default: everything)",
    )
    log.add_argument(
        "--level",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="minimum level (default INFO)",
    )
    log.add_argument("--grep", metavar="TEXT", help="only entries containing TEXT")
    log.add_argument("--limit", type=int, default=100, metavar="N", help="newest N entries")
    log.add_argument(
        "--node", dest="target_node", type=_node, metavar="N", help="only this node's log"
    )
    log.add_argument(
        "--follow", "-f", action="store_true", help="keep printing new entries until Ctrl-C"
    )
    log.set_defaults(handler=cmd_log)

    verify_cmd.add_parsers(sub)
    vm_cmd.add_parsers(sub)
    config_cmd.add_parsers(sub)
    console_cmd.add_parsers(sub)
    ca_cmd.add_parsers(sub)
    demo_cmd.add_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "wait_timeout", None) is not None:
        args.wait = True
    if getattr(args, "wait", False) and args.wait_timeout is None:
        args.wait_timeout = WAIT_TIMEOUT_S
    if hasattr(args, "func"):  # ca, demo: no agents, no cluster config
        try:
            return int(args.func(args) or 0)
        except KeyboardInterrupt:
            return Exit.INTERRUPTED
    ctx = Context(args)
    try:
        return int(args.handler(ctx, args))
    except (ConfigError, TlsError, SelectionError, ValueError) as e:
        # Local problems (config, certificate files, which node this is): nothing was asked.
        print(f"error: {e}", file=sys.stderr)
        return Exit.LOCAL
    except KeyboardInterrupt:
        return Exit.INTERRUPTED
    finally:
        ctx.close()


if __name__ == "__main__":
    sys.exit(main())
