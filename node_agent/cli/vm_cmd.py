"""`mirrorpair vm list`: the VMs each node's libvirt knows, with their disks (DESIGN §6)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from google.protobuf.json_format import MessageToDict

from node_agent.cli.client import AgentCallError, AgentUnavailable, ask_all
from node_agent.cli.commands import Context
from node_agent.cli.exits import Exit
from protos import mirrorpair_pb2 as pb


def add_parsers(sub: Any) -> None:
    vm = sub.add_parser("vm", help="the VMs each node's libvirt knows",
                        description="Virtual machines and vm modules.")  # fmt: skip
    vsub = vm.add_subparsers(dest="vm_command", metavar="VMCOMMAND", required=True)
    ls = vsub.add_parser(
        "list", help="every domain of each node's libvirt, with its disks",
        description="List the domains each node's libvirt knows (defined or running), "
        "their vCPUs, memory and disks, and the module protecting each. Exit 0 if a node "
        "answered, 10 if none could be reached, 13 if libvirt answered on none.",
    )  # fmt: skip
    ls.add_argument("--json", action="store_true", help="machine-readable JSON")
    ls.add_argument("--libvirt-uri", default="", metavar="URI",
                    help="ask this libvirt (default: the vm modules' URI, else "
                    "qemu:///system)")  # fmt: skip
    ls.set_defaults(handler=cmd_vm_list)


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.0f} MiB" if n < 10 << 30 else f"{n / (1 << 30):.1f} GiB"


def cmd_vm_list(ctx: Context, args: argparse.Namespace) -> int:
    results = ask_all(ctx.clients(), lambda c: c.list_vms(args.libvirt_uri))
    answered = {n: r for n, r in results.items() if isinstance(r, list)}
    if args.json:
        doc = {n: [MessageToDict(v, preserving_proto_field_name=True) for v in r]
               if isinstance(r, list) else {"error": str(r)} for n, r in results.items()}
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        for node, r in results.items():
            if not isinstance(r, list):
                print(f"{node}: ERROR {r}")
                continue
            print(f"{node}: {len(r)} domain(s)")
            for v in r:
                print("  " + _line(v))
                for d in v.disks:
                    print(f"      {d.target or '?':5} {d.path}  ({_mib(d.size_bytes)})")
    if answered:
        return Exit.OK
    unreachable = any(isinstance(r, AgentUnavailable) for r in results.values())
    if not unreachable:
        for r in results.values():
            if isinstance(r, AgentCallError):
                print(f"error: {r}", file=sys.stderr)
    return Exit.UNREACHABLE if unreachable else Exit.REFUSED


def _line(v: pb.VmInfo) -> str:
    kind = "defined" if v.persistent else "transient"
    owner = f"module {v.module}" if v.module else "not protected"
    return (f"{v.domain:20} {v.state:12} {v.vcpus} vCPU  {_mib(v.memory_bytes):>9}  "
            f"{kind}, {owner}")
