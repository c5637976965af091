"""What the console remembers over time: log entries (with the state transitions
among them, for the timeline) and resync progress series (for the graph)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from console.model.causes import is_normal, transition_colour
from console.model.cluster import NODE_IDS, ClusterModel, other_node, resync_of
from console.model.states import readiness_name, state_name
from protos import mirrorpair_pb2 as pb

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
# Agents that do not fill old/new_readiness yet say it in the message: "WAIT/TRANSIENT -> ..."
_TRANSITION_RE = re.compile(r"^\s*(\w+)/(\w+)\s*->\s*(\w+)/(\w+)")


@dataclass(frozen=True)
class LogRecord:
    time: float
    node_id: str
    module: str
    level: str
    message: str
    cause: str = ""
    who: str = ""
    seq: int = 0
    old_state: int = 0
    new_state: int = 0
    old_readiness: int = 0
    new_readiness: int = 0

    @property
    def key(self) -> tuple[str, int, float]:
        # seq restarts with the agent; with the time it stays unique across restarts.
        return (self.node_id, self.seq, self.time)

    @property
    def shown_level(self) -> str:
        """The level the console shows. The agent logs every entry into WAIT or ALONE at
        WARNING, start-up and pairing included; a transition in the normal course of
        things (start-up, pairing, resync, an operator's command) is INFO here, so that
        a warning means something went wrong."""
        level = LEVELS.get(self.level, 20)
        if self.is_transition and is_normal(self.cause) and LEVELS["INFO"] < level <= 30:
            return "INFO"
        return self.level

    @property
    def level_number(self) -> int:
        return LEVELS.get(self.shown_level, 20)

    @property
    def is_transition(self) -> bool:
        return self.new_state != pb.STATE_UNSPECIFIED

    def transition_text(self) -> str:
        def part(state: int, readiness: int) -> str:
            r = readiness_name(readiness)
            return f"{state_name(state)} {r}" if r else state_name(state)

        return (
            f"{part(self.old_state, self.old_readiness)} → "
            f"{part(self.new_state, self.new_readiness)}"
        )

    @property
    def colour(self) -> str:
        """The colour of the state entered (for the timeline); a normal stop or wait is
        grey, not red (causes.transition_colour)."""
        return transition_colour(self.new_state, self.new_readiness, self.cause).value


def _readiness_value(name: str) -> int:
    try:
        return pb.Readiness.Value(f"READINESS_{name.upper()}")
    except ValueError:
        return pb.READINESS_UNSPECIFIED


def record_from_pb(e: pb.LogEntry, node_id: str = "") -> LogRecord:
    old_r, new_r = e.old_readiness, e.new_readiness
    if e.new_state and not (old_r and new_r):
        m = _TRANSITION_RE.match(e.message)
        if m:
            old_r, new_r = _readiness_value(m[2]), _readiness_value(m[4])
    return LogRecord(
        time=e.time,
        node_id=e.node_id or node_id,
        module=e.module,
        level=e.level or "INFO",
        message=e.message,
        cause=e.cause,
        who=e.who,
        seq=e.seq,
        old_state=e.old_state,
        new_state=e.new_state,
        old_readiness=old_r,
        new_readiness=new_r,
    )


class LogStore:
    """Both nodes' log entries, oldest first, without duplicates (a reconnect re-reads
    recent history), bounded to ``capacity``."""

    def __init__(self, capacity: int = 5000) -> None:
        self.capacity = capacity
        self._records: list[LogRecord] = []
        self._keys: set[tuple[str, int, float]] = set()

    def add(self, records: Iterable[LogRecord]) -> tuple[list[LogRecord], bool]:
        """Store new records; (the new ones, whether they were all appended at the end
        — False means the order changed or old ones were dropped: re-read everything)."""
        new = [r for r in records if r.key not in self._keys]
        if not new:
            return [], True
        new.sort(key=lambda r: r.time)
        appended = not self._records or new[0].time >= self._records[-1].time
        for r in new:
            self._keys.add(r.key)
        self._records.extend(new)
        if not appended:
            self._records.sort(key=lambda r: r.time)
        if len(self._records) > self.capacity:
            drop = len(self._records) - self.capacity
            for r in self._records[:drop]:
                self._keys.discard(r.key)
            del self._records[:drop]
            appended = False
        return new, appended

    def records(self) -> list[LogRecord]:
        return list(self._records)

    def transitions(self, module: str) -> list[LogRecord]:
        return [r for r in self._records if r.module == module and r.is_transition]


@dataclass(frozen=True)
class ResyncPoint:
    t: float  # console clock
    bytes_done: int
    bytes_total: int
    rate: float  # bytes/s
    eta_s: float
    end: bool = False  # the resync's end (no rate measured): what it reached when it ended

    @property
    def percent(self) -> float | None:
        if self.bytes_total <= 0:
            return None
        return min(100.0, 100.0 * self.bytes_done / self.bytes_total)


class ResyncHistory:
    """Per module and node, the points of the current (or last) resynchronization."""

    def __init__(self, max_points: int = 3600, min_interval_s: float = 0.5) -> None:
        self.max_points = max_points
        self.min_interval_s = min_interval_s
        self._series: dict[tuple[str, str], list[ResyncPoint]] = {}
        self._active: dict[tuple[str, str], bool] = {}
        self._sources: dict[tuple[str, str], str] = {}
        self._late: dict[tuple[str, str], bool] = {}
        self._watched: set[tuple[str, str]] = set()

    def observe(self, model: ClusterModel, now: float) -> set[str]:
        """Add a point for every module resynchronizing now, under the node whose copy is
        being resynchronized; the modules whose series changed or whose resync just ended."""
        changed: set[str] = set()
        for node_id in NODE_IDS:
            st = model.status(node_id) if model.reachable(node_id) else None
            for m in st.modules if st is not None else ():
                source, r = resync_of(model, node_id, m.name, m)
                if r is not None and r.active:
                    self._sources[(m.name, node_id)] = source  # kept with the last series
                if self._observe_one(m.name, node_id, r or pb.ResyncProgress(), now):
                    changed.add(m.name)
                # While both nodes answer, a resync that starts is seen from its start.
                if model.reachable(other_node(node_id)):
                    self._watched.add((m.name, node_id))
                else:
                    self._watched.discard((m.name, node_id))
        return changed

    def source(self, module: str, node_id: str) -> str:
        """The node ``node_id``'s copy of ``module`` is (or was last) resynced from."""
        return self._sources.get((module, node_id), "")

    def _observe_one(self, module: str, node_id: str, r: pb.ResyncProgress, now: float) -> bool:
        key = (module, node_id)
        was_active = self._active.get(key, False)
        self._active[key] = r.active
        series = self._series.setdefault(key, [])
        if not r.active:
            if was_active and r.bytes_total > 0:
                # It just ended: its last point is the end (100 % when it completed), so
                # that the graph and the summary show the whole resync, not its last
                # progress report before the end.
                series.append(ResyncPoint(now, r.bytes_done, r.bytes_total, 0.0, 0.0, end=True))
            return was_active  # the graph's summary changes
        if not was_active or (series and r.bytes_done < series[-1].bytes_done):
            series.clear()  # a new resynchronization starts a new graph
            # Already under way when this console first looked: the start is not known.
            self._late[key] = key not in self._watched and r.bytes_done > 0
        point = ResyncPoint(now, r.bytes_done, r.bytes_total, r.rate_bytes_per_s, r.eta_s)
        last = series[-1] if series else None
        if (
            last is not None
            and now - last.t < self.min_interval_s
            and (last.bytes_done, last.bytes_total) == (r.bytes_done, r.bytes_total)
        ):
            return False  # nothing new since a moment ago
        series.append(point)
        if len(series) > self.max_points:
            del series[: len(series) - self.max_points]
        return True

    def series(self, module: str, node_id: str) -> list[ResyncPoint]:
        return list(self._series.get((module, node_id), ()))

    def active(self, module: str, node_id: str) -> bool:
        return self._active.get((module, node_id), False)

    def joined_late(self, module: str, node_id: str) -> bool:
        """The series began with a resync already under way (the console was opened
        or reconnected during it): its first point is not the resync's start."""
        return self._late.get((module, node_id), False)
