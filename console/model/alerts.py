"""Alerts for the tray: failover, degraded replication, split brain, a node lost —
found by comparing successive states of the model (pure logic, DESIGN §8)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from console.model.cluster import NODE_IDS, ClusterModel
from console.model.views import ModuleView

PLANNED_RULES = frozenset({"swap", "migrate", "defaultprim"})


class AlertKind(StrEnum):
    FAILOVER = "failover"  # the primary changed node without an operator's swap
    MOVED = "moved"  # the primary changed node by a swap/migrate (informational)
    DEGRADED = "degraded"
    SPLIT_BRAIN = "split-brain"
    NODE_LOST = "node-lost"
    NODE_BACK = "node-back"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Alert:
    kind: AlertKind
    severity: Severity
    cluster: str
    title: str
    message: str
    module: str = ""
    node: str = ""
    time: float = 0.0


class AlertDetector:
    """Remembers the last known primary and flags per module, and reports changes.

    Unknown counts as "not degraded / no split brain", so a console opened on a cluster
    that is already degraded alerts at once — the operator should know. A node that
    does not answer changes nothing it last reported (we do not know better).
    """

    def __init__(self) -> None:
        self._primary: dict[str, str] = {}
        self._flags: dict[tuple[str, str], tuple[bool, bool]] = {}
        self._reachable: dict[str, bool] = {}

    def update(self, model: ClusterModel, now: float) -> list[Alert]:
        out: list[Alert] = []
        c = model.name
        for node_id in NODE_IDS:
            view = model.node(node_id)
            if view.connecting:
                continue
            before = self._reachable.get(node_id)
            self._reachable[node_id] = view.reachable
            if before is True and not view.reachable:
                out.append(
                    Alert(
                        AlertKind.NODE_LOST,
                        Severity.CRITICAL,
                        c,
                        f"{c}: {node_id} is not answering",
                        view.error,
                        node=node_id,
                        time=now,
                    )
                )
            elif before is False and view.reachable:
                out.append(
                    Alert(
                        AlertKind.NODE_BACK,
                        Severity.INFO,
                        c,
                        f"{c}: {node_id} answers again",
                        "",
                        node=node_id,
                        time=now,
                    )
                )
        for m in model.modules():
            out.extend(self._module_alerts(c, m, now))
        return out

    def _module_alerts(self, c: str, m: ModuleView, now: float) -> list[Alert]:
        name = m.name
        out: list[Alert] = []
        if m.primary is not None:
            before = self._primary.get(name)
            self._primary[name] = m.primary
            if before is not None and before != m.primary:
                rule = m.nodes[m.primary].last_rule
                if rule in PLANNED_RULES:
                    out.append(
                        Alert(
                            AlertKind.MOVED,
                            Severity.INFO,
                            c,
                            f"{name} moved to {m.primary}",
                            f"{name} now runs on {m.primary} (was {before}; {rule})",
                            name,
                            m.primary,
                            now,
                        )
                    )
                else:
                    why = f" (rule: {rule})" if rule else ""
                    out.append(
                        Alert(
                            AlertKind.FAILOVER,
                            Severity.CRITICAL,
                            c,
                            f"Failover: {name} now runs on {m.primary}",
                            f"{name} failed over from {before} to {m.primary}{why}",
                            name,
                            m.primary,
                            now,
                        )
                    )
        for node_id, v in m.nodes.items():
            if not v.reachable or not v.configured:
                continue
            key = (name, node_id)
            was_degraded, was_split = self._flags.get(key, (False, False))
            self._flags[key] = (v.degraded, v.split_brain)
            if v.degraded and not was_degraded:
                out.append(
                    Alert(
                        AlertKind.DEGRADED,
                        Severity.WARNING,
                        c,
                        f"{name}: replication degraded on {node_id}",
                        v.reason or "the secondary no longer receives the writes",
                        name,
                        node_id,
                        now,
                    )
                )
            if v.split_brain and not was_split:
                out.append(
                    Alert(
                        AlertKind.SPLIT_BRAIN,
                        Severity.CRITICAL,
                        c,
                        f"{name}: split brain",
                        f"both nodes wrote independently ({node_id}: {v.reason}); "
                        "choose the surviving copy",
                        name,
                        node_id,
                        now,
                    )
                )
        return out
