"""What the views display, derived from snapshots: immutable, Qt-free dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field

from console.model.states import Colour, format_duration, format_rate, worst


@dataclass(frozen=True)
class Badge:
    text: str
    colour: Colour
    tooltip: str = ""


@dataclass(frozen=True)
class ResyncView:
    active: bool
    bytes_done: int
    bytes_total: int
    rate_bytes_per_s: float
    eta_s: float
    source: str = ""  # the node it copies from (the primary)

    @property
    def percent(self) -> float | None:
        """0..100, or None while the total is not known yet."""
        if self.bytes_total <= 0:
            return None
        return min(100.0, 100.0 * self.bytes_done / self.bytes_total)

    def summary(self) -> str:
        pct = self.percent
        parts = ["resync" if pct is None else f"resync {pct:.0f}%"]
        if self.eta_s > 0:
            parts.append(f"ETA {format_duration(self.eta_s)}")
        if self.rate_bytes_per_s > 0:
            parts.append(format_rate(self.rate_bytes_per_s))
        return " · ".join(parts)


@dataclass(frozen=True)
class CheckerView:
    node_id: str
    name: str
    kind: str
    ok: bool
    detail: str
    consecutive_failures: int
    action: str


@dataclass(frozen=True)
class DataPlaneView:
    """A replicated module's data plane process on one node (ModuleStatus.data_plane):
    what serves its mounts and its replication stream."""

    pid: int  # 0: none runs (it died; the agent starts it again)
    build: str
    role: str
    mode: str
    mounts: int
    started_at: float

    @property
    def down(self) -> bool:
        return self.pid == 0


@dataclass(frozen=True)
class NodeModuleView:
    """One module on one node, as the console shows it."""

    node_id: str
    label: str  # PRIM, SECOND... or ERROR / NOT CONFIGURED / CONNECTING
    readiness: str  # Ready, Transient, NotReady, or ""
    colour: Colour
    reachable: bool
    configured: bool
    primary: bool = False
    uptodate: bool | None = None  # None: not known (node unreachable, not configured)
    degraded: bool = False
    split_brain: bool = False
    reason: str = ""
    last_rule: str = ""
    vip_held: bool = False
    resource_running: bool = False
    state_since: float = 0.0
    resync: ResyncView | None = None
    checkers: tuple[CheckerView, ...] = ()
    badges: tuple[Badge, ...] = ()
    # What this node last heard of the module on its peer (its own, consistent view:
    # the peer's own snapshot may be older or newer than this node's).
    peer_label: str = ""
    peer_readiness: str = ""
    data_plane: DataPlaneView | None = None  # None: nothing replicated (or not known)

    @property
    def text(self) -> str:
        """ "PRIM · Ready", or just "ERROR"."""
        return f"{self.label} · {self.readiness}" if self.readiness else self.label


@dataclass(frozen=True)
class ModuleView:
    name: str
    kind: str
    vip: str
    vip_holder: str | None  # node id holding the VIP, None when nobody (or unknown)
    primary: str | None  # node id of the single primary; None when none (or two)
    preferred: str
    home: str  # the server column the card sits in
    nodes: dict[str, NodeModuleView] = field(default_factory=dict)
    two_primaries: bool = False

    @property
    def colour(self) -> Colour:
        return worst(n.colour for n in self.nodes.values())

    def vip_text(self) -> str:
        if not self.vip:
            return "no virtual IP"
        where = f"on {self.vip_holder}" if self.vip_holder else "not held"
        return f"VIP {self.vip} · {where}"


@dataclass(frozen=True)
class LinkView:
    name: str
    up: bool
    local_address: str
    peer_address: str
    last_heard_age_s: float  # -1: never heard
    # Recent pulses (console/model/links.py says what they mean); 0 until measured.
    gap_max_s: float = 0.0
    gap_p99_s: float = 0.0
    lateness_max_s: float = 0.0
    lateness_p99_s: float = 0.0


@dataclass(frozen=True)
class NodeView:
    """A server column's header."""

    node_id: str
    address: str
    reachable: bool
    connecting: bool
    error: str
    peer_alive: bool | None
    links: tuple[LinkView, ...]
    version: str
    witness: str  # "", "reachable", "unreachable"
    last_update: float  # console clock (time.time()) of the last snapshot, 0 = never
    down_since: float = 0.0  # console clock when it stopped answering, 0 = it answers
    config_version: int = 0  # the configuration version it runs (0 unknown / none)
    config_warning: str = ""  # the two nodes run different versions: what differs
    protocol: str = ""  # the agent's protocol ("1.1"; "" from an agent before 1.1)
    version_warning: str = ""  # the two agents run different builds: what differs
    peer_leaving_s: float = 0.0  # > 0: the peer's agent is restarting, alive by its word
    peer_incompatible: bool = False  # its peer speaks another major protocol: refused

    @property
    def colour(self) -> Colour:
        if self.connecting:
            return Colour.GREY
        if not self.reachable or self.peer_incompatible:
            return Colour.RED
        if any(not link.up for link in self.links) or self.config_warning or self.version_warning:
            return Colour.ORANGE
        return Colour.GREEN
