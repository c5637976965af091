"""The one small interface between interception (FUSE) and the data path.

The FUSE layer applies each operation to the local copy, then calls
``Replicator.replicate(op)`` and returns to the application only when that call
returns (sync mode: the secondary has applied it). A native path for VM disks
(QEMU block mirror) can replace the whole thing later without touching the automaton.
"""

from __future__ import annotations

from typing import Protocol

from node_agent.replication.ops import Op


class Replicator(Protocol):
    def replicate(self, op: Op) -> None:
        """Block until the operation is safe by the module's policy.

        Replicating (PRIM): until the secondary acknowledged it (or received it in
        async="second" mode). Tracking (ALONE, or degraded once the peer is known not to
        serve): until the zones it touches are durably marked in the bitmap. Held (the
        stream broke while the peer may be current): until the write gate decides.
        Raises OSError when nothing can make the write safe (the bitmap cannot be
        written, or the write gate fenced this node): the application then gets an I/O
        error rather than a lie.

        An implementation may also offer ``fenced`` (bool): when true, the FUSE layer
        refuses every change before applying it locally.
        """
