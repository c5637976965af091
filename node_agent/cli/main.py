"""`mirrorpair`: the admin command line (DESIGN §3, §7)."""

# ruff: noqa: E402
from __future__ import annotations

import os

# grpc's C core logs every refused TLS handshake to stderr at INFO; the CLI reports
# those itself, readably. Must be set before grpc is imported.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import argparse
import sys
from collections.abc import Sequence

from node_agent.cli import ca_cmd, demo_cmd, verify_cmd
from node_agent.cli.commands import (
    EXIT_SETUP,
    Context,
    cmd_log,
    cmd_module,
    cmd_state,
    cmd_status,
)
from node_agent.cli.select import COMMANDS, NEEDS_NODE, ON_PRIMARY, SelectionError
from node_agent.config.load import ConfigError
from node_agent.config.model import NODE_IDS
from node_agent.tls.ca import TlsError

DEFAULT_CONFIG = "/etc/mirrorpair/cluster.toml"

EPILOG = """\
exit codes:
  state: STOP 0, WAIT 1, ALONE 2, PRIM 3, SECOND 4, UP 5
  commands: 0 accepted, 1 refused or cancelled
  10 agent unreachable (or TLS refused), 11 unknown module,
  12 local problem (config, certificates, which node this is, bad arguments to state)
"""

_HELP = {
    "start": "start the module (on every node where it is stopped)",
    "stop": "stop the module (secondary first, then the primary)",
    "restart": "restart the resource on the primary, no failover",
    "stopstart": "stop then start on the primary (it fails over)",
    "forcestop": "stop at once on one node (--node), no clean handover",
    "swap": "exchange roles: the secondary becomes primary",
    "migrate": "move the module to the other node (a swap of this module)",
    "prim": "force one node (--node) primary even if not up to date",
    "second": "start one node (--node) as secondary",
}


class _Parser(argparse.ArgumentParser):
    """argparse with a settable usage-error exit code: `state` must never exit 2
    (ALONE) on a usage error."""

    usage_exit_code = 2

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(self.usage_exit_code, f"{self.prog}: error: {message}\n")


def _node(text: str) -> str:
    if text not in NODE_IDS:
        raise argparse.ArgumentTypeError(f"must be node1 or node2, got {text!r}")
    return text


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="mirrorpair",
        description="Manage a MirrorPair cluster through its two agents.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per agent call")
    sub = p.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)

    state = sub.add_parser("state", help="print a module's state here; exit code = state")
    state.usage_exit_code = EXIT_SETUP  # type: ignore[attr-defined]
    state.add_argument("module", metavar="MODULE")
    state.add_argument(
        "--node", dest="target_node", type=_node, help="ask this node instead of the local one"
    )
    state.set_defaults(handler=cmd_state)

    status = sub.add_parser("status", help="both nodes, every module")
    status.add_argument("--json", action="store_true", help="machine-readable JSON")
    status.set_defaults(handler=cmd_status)

    for command in COMMANDS:
        c = sub.add_parser(command, help=_HELP[command])
        c.add_argument("module", metavar="MODULE")
        where = (
            "required"
            if command in NEEDS_NODE
            else ("default: the primary" if command in ON_PRIMARY else "default: see above")
        )
        c.add_argument(
            "--node",
            dest="target_node",
            type=_node,
            metavar="N",
            help=f"send to this node only ({where})",
        )
        if command == "second":
            c.add_argument(
                "--fullsync",
                action="store_true",
                help="compare everything, not only recorded changes",
            )
        c.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
        c.set_defaults(handler=cmd_module, command=command, fullsync=False)

    log = sub.add_parser("log", help="logs of both nodes, merged by time")
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
    log.set_defaults(handler=cmd_log)

    verify_cmd.add_parsers(sub)
    ca_cmd.add_parsers(sub)
    demo_cmd.add_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if hasattr(args, "func"):  # ca, demo: no agents, no cluster config
        return int(args.func(args) or 0)
    ctx = Context(args)
    try:
        return int(args.handler(ctx, args))
    except (ConfigError, TlsError, SelectionError, ValueError) as e:
        # Local problems (config, certificate files, which node this is): nothing was asked.
        print(f"error: {e}", file=sys.stderr)
        return EXIT_SETUP
    except KeyboardInterrupt:
        return 130
    finally:
        ctx.close()


if __name__ == "__main__":
    sys.exit(main())
