"""Which node the CLI runs on, and which nodes a command goes to (pure but for the
address probe, which is injectable)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping

from node_agent.config.model import NODE_IDS, ClusterConfig
from protos import mirrorpair_pb2 as pb

PRIMARY_STATES = (pb.STATE_ALONE, pb.STATE_PRIM)
# Commands sent to the node currently primary for the module.
ON_PRIMARY = ("restart", "stopstart", "swap", "migrate")
# Commands that only make sense on one chosen node.
NEEDS_NODE = ("prim", "second", "forcestop")
COMMANDS = ("start", "stop", *ON_PRIMARY, "forcestop", "prim", "second")
CONFIRM = ("prim", "forcestop")  # risky: ask on a TTY unless --yes


class SelectionError(ValueError):
    """The command cannot be routed; the message tells the admin what to give."""


def api_host(address: str) -> str:
    """The host part of "host:port" / "[v6]:port"."""
    return address.rpartition(":")[0].strip("[]")


def is_local_address(host: str) -> bool:
    """True when ``host`` resolves to an address of this machine (binding to it works)."""
    try:
        infos = socket.getaddrinfo(host, 0, type=socket.SOCK_DGRAM)
    except OSError:
        return False
    for family, kind, proto, _name, sockaddr in infos:
        try:
            with socket.socket(family, kind, proto) as s:
                s.bind(sockaddr)  # port 0: never conflicts; EADDRNOTAVAIL when not ours
                return True
        except OSError:
            continue
    return False


def detect_local_node(
    config: ClusterConfig, is_local: Callable[[str], bool] = is_local_address
) -> str:
    """The node whose API host is an address of this machine."""
    hosts = {n: api_host(config.nodes[n].api) for n in NODE_IDS}
    local = [n for n in NODE_IDS if is_local(hosts[n])]
    listed = ", ".join(f"{n} {hosts[n]}" for n in NODE_IDS)
    if len(local) == 1:
        return local[0]
    if not local:
        raise SelectionError(
            f"this machine is neither node (API hosts: {listed}); "
            "give --node NODE or set MIRRORPAIR_NODE"
        )
    raise SelectionError(
        f"both nodes' API hosts are addresses of this machine ({listed}, e.g. the demo); "
        "give --node NODE or set MIRRORPAIR_NODE"
    )


def local_node(
    config: ClusterConfig,
    given: str | None = None,
    is_local: Callable[[str], bool] = is_local_address,
) -> str:
    """This machine's node: ``given`` (--node), else $MIRRORPAIR_NODE, else detected."""
    given = given or os.environ.get("MIRRORPAIR_NODE", "")
    if given:
        if given not in NODE_IDS:
            raise SelectionError(f"--node / MIRRORPAIR_NODE must be node1 or node2, got {given!r}")
        return given
    return detect_local_node(config, is_local)


def state_word(state: int | None) -> str:
    if state is None:
        return "unreachable"
    return pb.ModuleState.Name(state).removeprefix("STATE_") if state else "unknown"


def plan_targets(
    command: str, module: str, node: str | None, states: Mapping[str, int | None]
) -> list[str]:
    """The nodes to send ``command`` to, in order.

    ``states`` maps each node to the module's state there (None: unreachable or not
    known). An explicit ``node`` always wins. Without it:

    - start: every node where the module is not already started;
    - stop: every node where it is not STOP, non-primary first, so a secondary never
      takes over a module being stopped cluster-wide;
    - restart/stopstart/swap/migrate: the node currently primary;
    - prim/second/forcestop: refused, they need --node.
    """
    if node is not None:
        return [node]
    if command in NEEDS_NODE:
        raise SelectionError(f"{command} acts on one node: give --node node1 or --node node2")
    nodes = [n for n in NODE_IDS if n in states]
    summary = ", ".join(f"{n} {state_word(states[n])}" for n in nodes)
    if command == "start":
        return [n for n in nodes if states[n] in (None, pb.STATE_STOP, pb.STATE_UNSPECIFIED)]
    if command == "stop":
        running = [n for n in nodes if states[n] != pb.STATE_STOP]
        # Unknown (unreachable) first: it cannot be helped; the primary strictly last.
        return sorted(running, key=lambda n: states[n] in PRIMARY_STATES)
    if command in ON_PRIMARY:
        primaries = [n for n in nodes if states[n] in PRIMARY_STATES]
        if len(primaries) == 1:
            return primaries
        if not primaries:
            raise SelectionError(
                f"{module} has no primary node right now ({summary}); give --node to choose one"
            )
        raise SelectionError(f"{module} is primary on both nodes ({summary}); give --node")
    raise SelectionError(f"unknown command {command!r}")
