"""`swap --wait` / `migrate --wait`: after the command is accepted, follow both agents'
WatchStatus streams until the roles have exchanged -- the former secondary PRIM Ready,
the former primary SECOND Ready -- printing the module's log entries meanwhile."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping

from node_agent.cli import render
from node_agent.cli.client import AgentClient
from node_agent.cli.exits import Exit
from node_agent.cli.watch import ClusterWatch
from protos import mirrorpair_pb2 as pb

PRIMARY = (pb.STATE_PRIM, pb.STATE_ALONE)


def _pair(m: pb.ModuleStatus | None) -> str:
    if m is None:
        return "unreachable"
    return f"{render.state_name(m.state)} {render.readiness_name(m.readiness)}"


class SwapProgress:
    """The module's state on both nodes as the streams report it, and the verdict."""

    def __init__(self, module: str, old_primary: str, new_primary: str) -> None:
        self.module, self.old, self.new = module, old_primary, new_primary
        self.seen: dict[str, pb.ModuleStatus | None] = {old_primary: None, new_primary: None}
        self.left_primary = False  # the old primary has let go at least once

    def update(self, node: str, m: pb.ModuleStatus | None) -> None:
        self.seen[node] = m
        if node == self.old and m is not None and m.state not in PRIMARY:
            self.left_primary = True

    def done(self) -> bool:
        old, new = self.seen[self.old], self.seen[self.new]
        return (
            new is not None
            and old is not None
            and (new.state, new.readiness) == (pb.STATE_PRIM, pb.READINESS_READY)
            and (old.state, old.readiness) == (pb.STATE_SECOND, pb.READINESS_READY)
        )

    def undone(self) -> bool:
        """The old primary let go, then took the module back: the swap did not happen."""
        old, new = self.seen[self.old], self.seen[self.new]
        return (
            self.left_primary
            and old is not None
            and old.state in PRIMARY
            and old.readiness == pb.READINESS_READY
            and (new is None or new.state not in PRIMARY)
        )

    def summary(self) -> str:
        return ", ".join(f"{n} {_pair(self.seen[n])}" for n in (self.new, self.old))


def wait_swapped(
    watch: ClusterWatch, module: str, old_primary: str, new_primary: str, timeout_s: float
) -> int:
    """Exit.OK once swapped; WAIT_FAILED (15) on the deadline or when it was undone."""
    progress = SwapProgress(module, old_primary, new_primary)
    deadline = time.monotonic() + timeout_s
    print(f"waiting for {new_primary} to be PRIM and {old_primary} SECOND ...", flush=True)
    while time.monotonic() < deadline:
        u = watch.get(min(1.0, max(0.05, deadline - time.monotonic())))
        if u is None or u.event is None:
            continue
        for e in u.event.logs:
            if e.module == module:
                print("  " + render.format_log_entry(e), flush=True)
        progress.update(u.node, render.find_module(u.event.status, module))
        if progress.done():
            print(f"{module} swapped: {progress.summary()}", flush=True)
            return Exit.OK
        if progress.undone():
            print(f"error: the swap of {module} did not happen: {progress.summary()}",
                  file=sys.stderr)  # fmt: skip
            return Exit.WAIT_FAILED
    print(f"error: {module} not swapped within {timeout_s:g}s: {progress.summary()} "
          "(the agents go on; see `mirrorpair log`)", file=sys.stderr)  # fmt: skip
    return Exit.WAIT_FAILED


def watch_for_swap(clients: Mapping[str, AgentClient]) -> ClusterWatch:
    """Started before the command is sent, so no transition can be missed."""
    return ClusterWatch(clients, log_level="INFO")
