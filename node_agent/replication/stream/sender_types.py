"""What the primary's stream sender hands out: its states and stats, the error a waiter
gets when the peer never acknowledged its op, and the per-op pending record a FUSE
thread waits on (see sender.py). Apart only for size.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from node_agent.replication.ops import Op


class NotAcknowledged(OSError):
    """The peer never acknowledged the op (the stream failed or was closed first). It is
    tracked locally; EIO for whoever does not handle it."""

    def __init__(self, reason: str) -> None:
        super().__init__(errno.EIO, f"not acknowledged by the peer: {reason}")
        self.reason = reason


class SenderState(StrEnum):
    NEW = "new"
    RUNNING = "running"
    CLOSING = "closing"
    FAILED = "failed"
    CLOSED = "closed"


@dataclass(frozen=True)
class SenderStats:
    state: SenderState
    ops_sent: int
    bytes_sent: int
    in_flight: int  # ops not yet applied by the peer
    acked_seq: int  # cumulative release point (applied, or received in "second" mode)
    applied_seq: int
    last_rtt_s: float | None  # from writing a batch to the ACK covering it
    failure: str


def unacknowledged(reason: str) -> Callable[[], None]:
    def wait() -> None:
        raise NotAcknowledged(reason)

    return wait


def wait_pending(p: Pending) -> None:
    p.done.acquire()  # type: ignore[union-attr]
    if p.error is not None:
        raise p.error


class Pending:
    __slots__ = ("seq", "op", "size", "t0", "done", "released", "error")

    def __init__(self, seq: int, op: Op, size: int, t0: float, waited: bool) -> None:
        self.seq, self.op, self.size, self.t0 = seq, op, size, t0
        self.done: threading.Lock | None = None
        if waited:  # only the last chunk of a split Write has a waiter
            self.done = threading.Lock()
            self.done.acquire()
        self.released = False
        self.error: OSError | None = None
