"""How a change made through the mount reaches the replicator, in order (used by fusefs).

``Handover.change`` applies a change locally and hands the resulting operations to the
``Replicator`` (replicator.py) while it holds the change's claim (order.py): conflicting
changes are applied and handed over one after the other, in the same order on both copies;
the waits run after the claim is released, so they are pipelined. ``WritersLock`` is held
shared over the same span, so that the resync's final pass can pause every writer at a
moment with no change applied but not yet handed over. A change nobody waits for (the
kernel's writeback, utimens) leaves its waits to ``Writeback`` (writeback.py), settled by
the next durability point (``sync``, ``barrier``).
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any, TypeVar

from mfusepy import FuseOSError

from node_agent.replication import ops
from node_agent.replication.fuse.order import OrderGate, WritersLock
from node_agent.replication.fuse.writeback import Writeback
from node_agent.replication.replicator import Replicator

T = TypeVar("T")


class Handover:
    def __init__(self, replicator: Replicator, name: str) -> None:
        self.replicator = replicator
        self.gate = OrderGate()
        self.writers = WritersLock()  # public: the module's replication pauses all writers
        self._writeback = Writeback(name)

    def _refuse_if_fenced(self) -> None:
        if self.replicator.fenced:
            raise FuseOSError(errno.EIO)  # this node no longer serves: change nothing

    def change(
        self, keys: tuple[Any, ...], apply: Callable[[], tuple[T, list[ops.Op]]],
        background: bool = False, intent: ops.Op | None = None,
    ) -> T:  # fmt: skip
        """Apply locally, then hand the resulting operations over, in a consistent order.

        ``apply`` returns (value for the application, operations to replicate); it runs
        only once the claim on ``keys`` is held. A local failure replicates nothing.
        ``background``: nobody waits for this (kernel writeback): the waits go to the
        writeback thread, settled by the next durability point. ``intent``: the one op
        ``apply`` will produce (a Write, or a prefix of it), recorded before it runs.
        """
        self._refuse_if_fenced()
        rep = self.replicator
        prepared = rep.prepare(intent) if intent is not None else None
        with self.gate.claim(*keys), self.writers.shared():  # claim first: see WritersLock
            try:
                result, todo = apply()
            except BaseException:
                if prepared is not None:  # nothing written: drop its record
                    rep.abandon(prepared)
                raise
            waits = [rep.submit(op, prepared if i == 0 else None, background)
                     for i, op in enumerate(todo)]  # fmt: skip
        if background:
            self._writeback.add(waits)
            return result
        for wait in waits:
            wait()
        return result

    def sync(self, op: ops.Fsync, local: Callable[[], None]) -> None:
        """fsync/fdatasync: the peer's Fsync is ordered after every change handed over
        before it; the local sync then runs outside the writers lock (it covers what was
        applied before, and other writers need not wait for the disk), concurrently with
        the peer's; it returns once both are done, and the writebacks before it settled."""
        self._refuse_if_fenced()
        # The kernel handed this file's writebacks over before its FSYNC: the barrier
        # need not wait for later ones (another file's, still in the outbox).
        upto = self._writeback.mark()
        with self.writers.shared():
            wait = self.replicator.submit(op)
        try:
            local()
        finally:
            wait()  # always: it also ends the op's activity-log entry
        self._writeback.barrier(upto)  # covered by the Fsync's ACK; errors reported here

    def barrier(self) -> None:
        """close(): the writebacks handed over before it are settled (see writeback.py)."""
        self._writeback.barrier()

    def close(self) -> None:
        self._writeback.close()
