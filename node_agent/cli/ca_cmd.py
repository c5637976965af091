"""``mirrorpair ca init`` / ``mirrorpair ca issue``: the cluster CA from the command line."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

from node_agent.cli.exits import Exit
from protos.security.ca import (
    TlsError,
    create_ca,
    issue_certificate,
    load_certificate,
    server_name,
)
from protos.security.roles import ROLES, Role, role_of


def add_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``ca`` command (with ``init`` and ``issue``) to a CLI's subparsers."""
    ca = subparsers.add_parser(
        "ca",
        help="create the cluster CA and issue certificates",
        description="The cluster's certificate authority: `ca init` creates it, `ca issue` "
        "signs node, console and admin certificates with it. No agent is contacted.",
    )
    sub = ca.add_subparsers(dest="ca_command", metavar="COMMAND", required=True)

    init = sub.add_parser(
        "init",
        help="create the cluster certificate authority",
        description="Create ca.pem and ca.key in --dir (refused if they exist, unless --force).",
    )
    init.add_argument("--dir", required=True, type=Path, help="directory for ca.pem and ca.key")
    init.add_argument("--cluster", required=True, help="cluster name (goes into the CA's name)")
    init.add_argument("--force", action="store_true", help="overwrite an existing CA")
    init.set_defaults(func=cmd_init)

    issue = sub.add_parser(
        "issue",
        help="issue a node, console or admin certificate",
        description="Issue NAME.pem and NAME.key signed by the CA of --dir: a node "
        "certificate (server and client, named mirrorpair-NAME) or, with --client-only, a "
        "console or admin certificate.",
    )
    issue.add_argument("--dir", required=True, type=Path, help="the CA directory (ca init --dir)")
    issue.add_argument("--name", required=True, help="node id (node1, node2) or client name")
    issue.add_argument(
        "--ip", action="append", default=[], type=_ip, metavar="IP", help="IP SAN (repeatable)"
    )
    issue.add_argument("--dns", action="append", default=[], metavar="NAME", help="DNS SAN")
    issue.add_argument(
        "--client-only",
        action="store_true",
        help="a console/admin certificate (clientAuth only, no server names)",
    )
    issue.add_argument(
        "--no-localhost",
        action="store_true",
        help="leave localhost, 127.0.0.1 and ::1 out of a node certificate",
    )
    issue.add_argument(
        "--role",
        choices=[r.label for r in ROLES],
        help="what the certificate may ask agents: node (default for a node certificate), "
        "operator (watch, swap, migrate, start, stop) or administrator (also prim, "
        "forcestop, second, configuration; default for --client-only)",
    )
    issue.add_argument("--out", type=Path, help="output directory (default: the CA directory)")
    issue.add_argument("--force", action="store_true", help="overwrite existing files")
    issue.set_defaults(func=cmd_issue)


def cmd_init(args: argparse.Namespace) -> int:
    try:
        cert, key = create_ca(args.dir, args.cluster, force=args.force)
    except (OSError, ValueError) as e:
        return _fail(e)
    print(f"created the CA of cluster {args.cluster!r}:")
    print(f"  certificate: {cert}   (copy to every node and console)")
    print(f"  key:         {key}   (keep it secret; only needed to issue certificates)")
    return 0


def cmd_issue(args: argparse.Namespace) -> int:
    out = args.out if args.out is not None else args.dir
    try:
        cert, key = issue_certificate(
            args.dir,
            args.name,
            out,
            ips=args.ip,
            dns=args.dns,
            server=not args.client_only,
            client=True,
            localhost=not args.no_localhost,
            force=args.force,
            role=Role.parse(args.role) if args.role else None,
        )
    except (OSError, ValueError, TlsError) as e:
        return _fail(e)
    kind = "client" if args.client_only else "node (server and client)"
    role = role_of(load_certificate(cert))
    print(f"issued a {kind} certificate for {args.name!r}, role {role.label}:")
    print(f"  certificate: {cert}")
    print(f"  key:         {key}")
    if not args.client_only:
        print(f"  clients verify it as server name {server_name(args.name)!r}")
    return 0


def _ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r}") from None


def _fail(error: Exception) -> int:
    print(f"error: {error}", file=sys.stderr)
    return Exit.LOCAL
