"""`mirrorpair vm list`: the VMs each node's libvirt knows, with their disks (DESIGN §6)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from google.protobuf.json_format import MessageToDict

from node_agent.cli.client import AgentCallError, AgentUnavailable, ask_all
from node_agent.cli.commands import Context, confirm
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
    ad = vsub.add_parser(
        "adopt", help="gather an existing domain into a directory for a vm module",
        description="Move DOMAIN's disk images, NVRAM and boot files into DIRECTORY on "
        "--node, rewrite its definition to point there (DIRECTORY/DOMAIN.xml) and undefine "
        "it from libvirt: from then on the vm module defines it where it runs. Shows what "
        "would move and asks first (on a terminal, type y; without one, only --yes). "
        "Refused, with the reason, if the domain runs, has snapshots, or has a disk that "
        "cannot be replicated (a block or network device, a qcow2 backing chain). Prints "
        "the module's section for the cluster config. Exit 0 adopted, 13 refused, "
        "14 not confirmed, 10 agent unreachable.",
    )  # fmt: skip
    ad.add_argument("domain", metavar="DOMAIN", help="the libvirt domain's name")
    ad.add_argument("--node", dest="target_node", required=True, choices=("node1", "node2"),
                    help="the node whose libvirt defines DOMAIN")  # fmt: skip
    ad.add_argument(
        "--directory",
        required=True,
        metavar="DIR",
        help="where the VM's files go (absolute; the module replicates it)",
    )
    ad.add_argument("--module", default="", help="the module's name (default: DOMAIN)")
    ad.add_argument("--libvirt-uri", default="", metavar="URI", help="default qemu:///system")
    ad.add_argument(
        "--yes",
        "-y",
        action="store_true",
        default=argparse.SUPPRESS,
        help="answer yes to the question (needed without a terminal)",
    )
    ad.set_defaults(handler=cmd_vm_adopt)


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.0f} MiB" if n < 10 << 30 else f"{n / (1 << 30):.1f} GiB"


def cmd_vm_list(ctx: Context, args: argparse.Namespace) -> int:
    results = ask_all(ctx.clients(), lambda c: c.list_vms(args.libvirt_uri))
    answered = {n: r for n, r in results.items() if isinstance(r, list)}
    if args.json:
        doc = {
            n: [MessageToDict(v, preserving_proto_field_name=True) for v in r]
            if isinstance(r, list)
            else {"error": str(r)}
            for n, r in results.items()
        }
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
    return f"{v.domain:20} {v.state:12} {v.vcpus} vCPU  {_mib(v.memory_bytes):>9}  {kind}, {owner}"


def cmd_vm_adopt(ctx: Context, args: argparse.Namespace) -> int:
    client = ctx.clients()[args.target_node]
    request = pb.AdoptVmRequest(domain=args.domain, directory=args.directory,
                                module=args.module, libvirt_uri=args.libvirt_uri)  # fmt: skip
    try:
        plan = client.adopt_vm(request, dry_run=True)
    except AgentUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return Exit.UNREACHABLE
    except AgentCallError as e:
        print(f"refused: {e.detail}", file=sys.stderr)
        return Exit.REFUSED
    print(f"adopting {args.domain} on {args.target_node} into {args.directory}:")
    for move in plan.moves:
        print(f"  move {move}")
    question = (f"move {len(plan.moves)} file(s) of {args.domain} on {args.target_node} and "
                "undefine it from libvirt")  # fmt: skip
    answer = confirm(question, args.yes)
    if answer != Exit.OK:
        return answer
    try:
        done = client.adopt_vm(request, dry_run=False)
    except AgentUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return Exit.UNREACHABLE
    except AgentCallError as e:
        print(f"failed: {e.detail}", file=sys.stderr)
        return Exit.REFUSED
    print(f"{args.domain} adopted. Add this module to the cluster config on both nodes:\n")
    print(done.config)
    return Exit.OK
