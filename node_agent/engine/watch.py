"""The API's status stream (Watch): a status each time something shown moved, with the
log entries since the last one, and a keepalive while nothing does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from node_agent.engine.logbook import LogBook, level_number
from protos import mirrorpair_pb2 as pb

WATCH_KEEPALIVE_S = 2.0


async def watch_events(
    status_fn: Callable[[], pb.NodeStatus],
    logbook: LogBook,
    changed: asyncio.Condition,
    stopping: Callable[[], bool],
    log_level: str = "",
) -> AsyncIterator[pb.StatusEvent]:
    """Until the agent stops; ``changed`` is notified when the engine saw a move."""
    floor = level_number(log_level, default=100) if log_level else 100
    seq = 0
    log_seq = logbook.seq
    last = None
    while not stopping():
        status = status_fn()
        logs = logbook.since(log_seq, floor) if floor <= 40 else []
        log_seq = logbook.seq
        # Ignore the clock and link ages and timings when deciding whether anything
        # changed: they move with every pulse.
        probe = pb.NodeStatus()
        probe.CopyFrom(status)
        probe.time = 0
        for link in probe.links:
            link.last_heard_age_s = link.gap_max_s = link.gap_p99_s = 0
            link.lateness_max_s = link.lateness_p99_s = 0
        fingerprint = probe.SerializeToString(deterministic=True)
        if fingerprint != last or logs or seq == 0:
            last = fingerprint
            seq += 1
            yield pb.StatusEvent(seq=seq, status=status, logs=logs)
        async with changed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(WATCH_KEEPALIVE_S):
                    await changed.wait()
