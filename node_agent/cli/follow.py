"""`mirrorpair log --follow`: the newest entries of both nodes, then every new one as it
is logged, until Ctrl-C. New entries come from the WatchStatus streams; an agent that
comes back (restart, link restored) has what it logged meanwhile fetched with GetLogs."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Mapping

from node_agent.cli import render
from node_agent.cli.client import AgentCallError, AgentClient, AgentClientError, ask_all
from node_agent.cli.exits import Exit
from node_agent.cli.watch import ClusterWatch, Update
from protos import mirrorpair_pb2 as pb

Key = tuple[str, int, float]  # (node, seq, time): seq restarts with the agent, time does not
CATCH_UP_LIMIT = 1000  # entries asked for when a lost agent answers again


def _key(e: pb.LogEntry) -> Key:
    return (e.node_id, e.seq, e.time)


class Follower:
    """Prints each matching entry once; remembers per node what it printed last."""

    def __init__(self, module: str, level: str, grep: str) -> None:
        self.module, self.level, self.grep = module, level, grep.lower()
        self.printed: set[Key] = set()
        self.last_time: dict[str, float] = {}

    def matches(self, e: pb.LogEntry) -> bool:
        # The same filter as the agent's GetLogs (Watch filters the level itself).
        if self.module and e.module != self.module:
            return False
        return not self.grep or self.grep in e.message.lower() or self.grep in e.cause.lower()

    def emit(self, entries: Iterable[pb.LogEntry], after: float = 0.0) -> None:
        for e in entries:
            if _key(e) in self.printed or e.time < after or not self.matches(e):
                continue
            self.printed.add(_key(e))
            self.last_time[e.node_id] = max(self.last_time.get(e.node_id, 0.0), e.time)
            print(render.format_log_entry(e), flush=True)

    def backlog(self, clients: Mapping[str, AgentClient], limit: int) -> dict[str, object]:
        """GetLogs of ``clients``: print the newest ``limit`` entries merged by time."""
        results = ask_all(clients, lambda c: c.logs(self.module, limit, self.level, self.grep))
        answers = {n: r for n, r in results.items() if isinstance(r, list)}
        self.emit(render.merge_logs(answers, limit))
        return dict(results)


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _first_updates(watch: ClusterWatch, nodes: list[str], wait_s: float) -> dict[str, Update]:
    """Each node's first update (a snapshot or an error), gathered for up to ``wait_s``;
    the log entries of early snapshots are kept in them."""
    first: dict[str, Update] = {}
    extra: list[Update] = []
    deadline = time.monotonic() + wait_s
    while len(first) < len(nodes) and time.monotonic() < deadline:
        u = watch.get(0.2)
        if u is None:
            continue
        if u.node in first:
            extra.append(u)
        else:
            first[u.node] = u
    for u in extra:  # later events of a fast node: their logs are new, keep them
        if u.event is not None and first[u.node].event is not None:
            first[u.node].event.logs.extend(u.event.logs)  # type: ignore[union-attr]
    return first


def follow_logs(clients: Mapping[str, AgentClient], args: argparse.Namespace) -> int:
    """Print the backlog, then follow until Ctrl-C (exit 0). Exit 10 when no agent answers
    at the start, 11 when none knows the module."""
    level = args.level or "INFO"
    f = Follower(args.module or "", level, args.grep or "")
    with ClusterWatch(clients, log_level=level) as watch:
        first = _first_updates(watch, list(clients), args.timeout + 1)
        up = {n: u.event for n, u in first.items() if u.event is not None}
        down = {n: (u.error if u and u.error else f"{n}: no answer yet")
                for n in clients if (u := first.get(n)) is None or u.error is not None}  # fmt: skip
        for error in down.values():  # with one node up, the other is tried again meanwhile
            _note(f"error: {error}" + ("; retrying" if up else ""))
        if not up:
            return Exit.UNREACHABLE
        if f.module and not any(render.find_module(ev.status, f.module) for ev in up.values()):
            names = render.module_names({n: ev.status for n, ev in up.items()})
            print(f"error: unknown module {f.module!r} (modules: {', '.join(names) or 'none'})",
                  file=sys.stderr)  # fmt: skip
            return Exit.UNKNOWN_MODULE
        f.backlog({n: clients[n] for n in up}, args.limit)
        for ev in up.values():
            f.emit(ev.logs)
        lost = {n for n in clients if n not in up}
        try:
            while True:
                u = watch.get(1.0)
                if u is None:
                    continue
                if u.error is not None:
                    if u.node not in lost:
                        lost.add(u.node)
                        _note(f"{u.node}: connection lost ({u.error}); retrying")
                    continue
                assert u.event is not None
                if u.node in lost:
                    lost.discard(u.node)
                    _note(f"{u.node}: connected")
                    _catch_up(f, clients[u.node], u.node)
                f.emit(u.event.logs)
        except KeyboardInterrupt:
            return Exit.OK


def _catch_up(f: Follower, client: AgentClient, node: str) -> None:
    """What ``node`` logged while we could not hear it (since the last entry printed)."""
    try:
        entries = client.logs(f.module, CATCH_UP_LIMIT, f.level, f.grep)
    except AgentClientError as e:
        if not (isinstance(e, AgentCallError)):
            _note(f"{node}: {e}")
        return
    f.emit(entries, after=f.last_time.get(node, 0.0))
