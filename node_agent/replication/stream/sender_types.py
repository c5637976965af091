"""What the primary's stream sender hands out: its states and stats, the error a waiter
gets when the peer never acknowledged its op, the per-op pending record a FUSE thread
waits on, and the table of REQUESTs awaiting a REPLY (see sender.py). Apart only for size.
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


class RequestFailed(Exception):
    """The peer answered a REQUEST with FLAG_FAILED; the message says why."""


class Waiting:
    __slots__ = ("event", "reply", "error")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reply = b""
        self.error: BaseException | None = None


class PendingRequests:
    """Request ids and their waiters (thread-safe). ``add`` -> id; the stream's reader
    calls ``resolve``; a dying stream calls ``fail_all``; the caller blocks in ``wait``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self._waiting: dict[int, Waiting] = {}

    def add(self) -> tuple[int, Waiting]:
        with self._lock:
            self._seq += 1
            w = self._waiting[self._seq] = Waiting()
            return self._seq, w

    def resolve(self, rid: int, body: bytes, failed: bool) -> None:
        with self._lock:
            w = self._waiting.pop(rid, None)
        if w is None:  # timed out meanwhile: dropped
            return
        if failed:
            w.error = RequestFailed(bytes(body).decode("utf-8", "replace"))
        else:
            w.reply = body
        w.event.set()

    def fail_all(self, error: BaseException) -> None:
        with self._lock:
            waiting, self._waiting = list(self._waiting.values()), {}
        for w in waiting:
            w.error = error
            w.event.set()

    def wait(self, rid: int, w: Waiting, timeout_s: float, peer: str) -> bytes:
        """The reply; RequestFailed, the fail_all error, or TimeoutError (the stream
        stays up and a late reply is dropped)."""
        if not w.event.wait(timeout_s):
            with self._lock:
                self._waiting.pop(rid, None)
            raise TimeoutError(f"no reply from {peer} to request {rid} within {timeout_s:g} s")
        if w.error is not None:
            raise w.error
        return w.reply
