"""What one scrape of the metrics endpoint reads: the engine's status and the counters
the status does not carry, copied on the event loop in one go (so the HTTP thread never
touches the engine's live objects), plus each data plane's fresh state."""

from __future__ import annotations

from dataclasses import dataclass, field

from node_agent.core.transition_counts import TransitionCounts
from protos import dataplane_pb2 as dp
from protos import mirrorpair_pb2 as pb


@dataclass(frozen=True)
class ModuleExtra:
    counts: TransitionCounts = field(default_factory=TransitionCounts)
    # Its data plane's state (replicated modules); None: not replicated or none runs.
    dataplane: dp.DataPlaneState | None = None


@dataclass(frozen=True)
class Snapshot:
    status: pb.NodeStatus
    serving: bool  # the engine runs its modules (started, not stopping)
    modules: dict[str, ModuleExtra] = field(default_factory=dict)
    # Rejected heartbeat datagrams by reason (the liveness' own count, all links).
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
