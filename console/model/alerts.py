"""Alerts for the tray: failover, degraded replication, split brain, a node lost, and
redundancy restored — found by comparing successive states of the model and the agents'
transition log entries (pure logic, DESIGN §8)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from console.model.causes import (
    PLANNED_LEAVE_CAUSES,
    PLANNED_TAKEOVER_CAUSES,
    cause_of,
    who_of,
)
from console.model.cluster import NODE_IDS, ClusterModel, other_node
from console.model.history import LogRecord
from console.model.states import CONNECTING, is_primary
from console.model.views import ModuleView, NodeModuleView

# How a primary left the role, in words ("node1 was stopped by root@desk").
_LEFT = {
    "stop": "stopped",
    "forcestop": "force-stopped",
    "stopstart": "stopped and started again",
    "swap": "handed over",
    "migrate": "handed over",
    "defaultprim": "handed over to its preferred node",
}


class AlertKind(StrEnum):
    FAILOVER = "failover"  # the primary changed node without an operator's swap
    MOVED = "moved"  # the primary changed node on purpose: swap, migrate, stop (informational)
    DEGRADED = "degraded"  # replication failed: the primary runs without a current copy
    UNPROTECTED = "unprotected"  # without a current copy because the peer was stopped
    RESTORED = "restored"  # a current secondary again, after running without one
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
        # Per (module, node): its latest transition into or out of a primary state.
        self._role_change: dict[tuple[str, str], LogRecord] = {}
        # Per (module, node, command): who last had it accepted there.
        self._who: dict[tuple[str, str, str], str] = {}
        self._armed: set[str] = set()  # seen protected (or opened on it), not starting up
        self._lost: set[str] = set()  # since then seen serving without a current secondary
        self._seen: set[str] = set()

    def note_transitions(self, records: Iterable[LogRecord]) -> None:
        """The agents' transition entries (the log stream, history included): they say
        why a primary left the role even when the status stream skipped the state."""
        for r in records:
            if not r.module:
                continue
            if not r.is_transition:
                # "command stop accepted" (INFO; refused ones are WARNING) names who: the
                # transition it leads to may not (a stop ends when the resource is down).
                if r.who and r.level == "INFO" and r.cause in PLANNED_LEAVE_CAUSES:
                    self._who[(r.module, r.node_id, r.cause)] = r.who
                continue
            if is_primary(r.old_state) == is_primary(r.new_state):
                continue
            key = (r.module, r.node_id)
            known = self._role_change.get(key)
            if known is None or r.time >= known.time:
                self._role_change[key] = r

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
        out = self._primary_alerts(c, m, now)
        for node_id, v in m.nodes.items():
            if not v.reachable or not v.configured:
                continue
            key = (m.name, node_id)
            was_degraded, was_split = self._flags.get(key, (False, False))
            if (
                v.degraded
                and not was_degraded
                and m.nodes[other_node(node_id)].label == (CONNECTING)
            ):
                continue  # why it is degraded depends on the peer: ask again once it is known
            self._flags[key] = (v.degraded, v.split_brain)
            if v.degraded and not was_degraded:
                out.append(self._degraded(c, m, v, now))
            if v.split_brain and not was_split:
                out.append(
                    Alert(
                        AlertKind.SPLIT_BRAIN,
                        Severity.CRITICAL,
                        c,
                        f"{m.name}: split brain",
                        f"both nodes wrote independently ({node_id}: {v.reason}); "
                        "choose the surviving copy",
                        m.name,
                        node_id,
                        now,
                    )
                )
        moved = any(a.kind in (AlertKind.MOVED, AlertKind.FAILOVER) for a in out)
        # A move's own alert already says the new primary serves without a secondary.
        out.extend(a for a in self._redundancy(c, m, now)
                   if not (moved and a.kind is AlertKind.UNPROTECTED))  # fmt: skip
        return out

    def _primary_alerts(self, c: str, m: ModuleView, now: float) -> list[Alert]:
        name = m.name
        if m.primary is None:
            return []
        before = self._primary.get(name)
        self._primary[name] = m.primary
        if before is None or before == m.primary:
            return []
        why = self._planned(m, before)
        if why:
            alone = m.nodes[m.primary].label == "ALONE"
            tail = f"; {m.primary} serves it without a secondary" if alone else ""
            return [
                Alert(
                    AlertKind.MOVED,
                    Severity.INFO,
                    c,
                    f"{name} moved to {m.primary}",
                    f"{name} now runs on {m.primary} ({why}){tail}",
                    name,
                    m.primary,
                    now,
                )
            ]
        rule = m.nodes[m.primary].last_rule
        because = f" (rule: {rule})" if rule else ""
        return [
            Alert(
                AlertKind.FAILOVER,
                Severity.CRITICAL,
                c,
                f"Failover: {name} now runs on {m.primary}",
                f"{name} failed over from {before} to {m.primary}{because}",
                name,
                m.primary,
                now,
            )
        ]

    def _planned(self, m: ModuleView, before: str) -> str:
        """Why the primary moved from ``before`` on purpose, or "" (then it is a
        failover): a swap/migrate took it over, or ``before`` left the role by a stop,
        force stop or swap -- as its transition entries say, else its current rule."""
        took = cause_of(m.nodes[m.primary].last_rule) if m.primary else ""
        if took in PLANNED_TAKEOVER_CAUSES:
            return took
        left = self._role_change.get((m.name, before))
        if left is not None and not is_primary(left.new_state):
            cause = cause_of(left.cause)
            who = left.who or self._who.get((m.name, before, cause), "")
        else:
            old = m.nodes.get(before)
            if old is None or not old.reachable or old.primary:
                return ""
            cause, who = cause_of(old.last_rule), who_of(old.last_rule)
        if cause not in PLANNED_LEAVE_CAUSES:
            return ""
        return f"{before} was {_LEFT[cause]}" + (f" by {who}" if who else "")

    def _degraded(self, c: str, m: ModuleView, v: NodeModuleView, now: float) -> Alert:
        if _peer_stopped(m, v.node_id):  # flagged degraded, but nothing failed
            return _unprotected(c, m, v.node_id, now)
        return Alert(
            AlertKind.DEGRADED,
            Severity.WARNING,
            c,
            f"{m.name}: replication degraded on {v.node_id}",
            v.reason or "the secondary no longer receives the writes",
            m.name,
            v.node_id,
            now,
        )

    def _redundancy(self, c: str, m: ModuleView, now: float) -> list[Alert]:
        """'Redundancy restored' once a module seen serving without a current secondary
        (after a failover, a stop of its secondary, a failed replication, or opened so)
        has a ready primary and a ready secondary again -- the end of its resync."""
        name = m.name
        if any(v.label == CONNECTING for v in m.nodes.values()):
            return []  # not known yet: a node still connecting is not a lost secondary
        first = name not in self._seen
        self._seen.add(name)
        protected = _protected(m)
        if protected or (first and m.primary is not None):
            # Protected once (or opened on it serving): from now on running without a
            # current secondary is a loss. Before, it is a start-up's moment alone.
            self._armed.add(name)
        if protected:
            if name in self._lost:
                self._lost.discard(name)
                second = other_node(m.primary or "")
                return [
                    Alert(
                        AlertKind.RESTORED,
                        Severity.INFO,
                        c,
                        f"{name}: redundancy restored",
                        f"{second}'s copy is identical to {m.primary}'s again: every write "
                        "is replicated before it is acknowledged",
                        name,
                        m.primary or "",
                        now,
                    )
                ]
        elif _without_copy(m) and name in self._armed:
            newly = name not in self._lost
            self._lost.add(name)
            primary = m.primary or ""
            if newly and not m.nodes[primary].degraded and _peer_stopped(m, primary):
                # Its secondary was stopped on purpose: the agent flags nothing (no
                # failure), but the module is not protected, and the desk should know.
                return [_unprotected(c, m, primary, now)]
        return []


def _peer_stopped(m: ModuleView, node_id: str) -> bool:
    """The other node of ``node_id`` is stopped, by a command (not a failure)."""
    peer = m.nodes.get(other_node(node_id))
    return (
        peer is not None
        and peer.reachable
        and peer.label == "STOP"
        and cause_of(peer.last_rule) in PLANNED_LEAVE_CAUSES
    )


def _unprotected(c: str, m: ModuleView, node_id: str, now: float) -> Alert:
    peer = m.nodes[other_node(node_id)]
    who = who_of(peer.last_rule)
    return Alert(
        AlertKind.UNPROTECTED,
        Severity.WARNING,
        c,
        f"{m.name}: not protected while {peer.node_id} is stopped",
        f"{peer.node_id} was stopped"
        + (f" by {who}" if who else "")
        + f"; {node_id} serves {m.name} without a copy",
        m.name,
        node_id,
        now,
    )


def _protected(m: ModuleView) -> bool:
    """The primary is PRIM Ready and not degraded: by the agent's own rule, it replicates
    to a ready secondary with the same data generation. (Read from the primary's
    snapshot alone: the two nodes' snapshots reach the console at different moments.)"""
    if m.primary is None:
        return False
    here = m.nodes[m.primary]
    return (
        here.reachable and (here.label, here.readiness) == ("PRIM", "Ready") and not (here.degraded)
    )


def _without_copy(m: ModuleView) -> bool:
    """Served without a current secondary, as the primary itself reports it: alone,
    degraded, or resyncing its secondary. (Not a swap: the node handing over is current.)"""
    if m.primary is None:
        return False
    here = m.nodes[m.primary]
    if not here.reachable:
        return False
    resyncing = (here.peer_label, here.peer_readiness) == ("SECOND", "Transient")
    return here.label == "ALONE" or here.degraded or (here.label == "PRIM" and resyncing)
