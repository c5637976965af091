"""The one small interface between interception (FUSE) and the data path.

The FUSE layer (fuse/handover.py) applies each operation to the local copy, hands it over
with ``submit`` while it still holds the operation's claim (so conflicting operations reach
the replicator in the order they were applied), then calls the wait ``submit`` returned and
answers the application only when that returns. A Write is recorded first (``prepare``,
before the local apply: write-ahead), and that record is dropped (``abandon``) if the local
apply fails. The module's implementation is ``PrimaryReplicator`` (roles/primary.py), one
view of it per mount. A native path for VM disks (QEMU block mirror) can replace the whole
thing later without touching the automaton.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from node_agent.replication.ops import Op

Wait = Callable[[], None]


@dataclass(frozen=True)
class Prepared:
    """A write's record, made *before* it is applied locally (a crash between the local
    write and its record would leave a difference nobody knows of): its zones active in the
    activity log (``token``), or marked in the bitmap (``marked``). Opaque to the FUSE
    layer, which only hands it back."""

    token: tuple = ()
    marked: bool = False


class Replicator(Protocol):
    @property
    def fenced(self) -> bool:
        """True once this node no longer serves the module: the FUSE layer then refuses
        every change before applying it locally."""
        ...

    def prepare(self, op: Op) -> Prepared:
        """Record ``op`` (a Write) before it is applied locally; outside any claim, so that
        many writers share one journal sync."""
        ...

    def abandon(self, prepared: Prepared) -> None:
        """The prepared write failed locally: nothing will be submitted for it."""
        ...

    def submit(self, op: Op, prepared: Prepared | None = None, background: bool = False) -> Wait:
        """Give ``op`` (applied locally just before) its place in the stream, without
        waiting for a round trip; ``prepared``: its record from ``prepare``;
        ``background``: nobody waits for it now (a writeback, settled at the next
        durability point), so it may leave from another thread while the caller goes on;
        otherwise the caller waits right away, and it leaves from the caller's thread.
        The returned wait blocks until the operation is safe by the module's policy:

        Replicating (PRIM): until the secondary acknowledged it (or received it in
        async="second" mode). Tracking (ALONE, or degraded once the peer is known not to
        serve): at once (the zones it touches are durably marked in the bitmap before
        ``submit`` returns). Held (the stream broke while the peer may be current): until
        the write gate decides. ``submit`` or the wait raise OSError when nothing can make
        the write safe (the bitmap cannot be written, or the write gate fenced this node):
        the application then gets an I/O error rather than a lie.
        """
        ...
