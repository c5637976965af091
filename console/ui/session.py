"""One watched cluster: its client (transport), model, logs, resync history, operations
and alert detector, exposed to the widgets through Qt signals."""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, QTimer, Signal

from console.client.cluster_client import ClusterClient
from console.client.events import (
    ClientEvent,
    CommandResult,
    LogEntries,
    NodeSnapshot,
    NodeUnreachable,
)
from console.client.node_client import Timeouts
from console.model.alerts import AlertDetector
from console.model.cluster import ClusterModel
from console.model.history import LogStore, ResyncHistory, record_from_pb
from console.model.migration import MigrationPlan
from console.model.operations import Operation, OperationTracker
from console.settings.clusters import ClusterEntry
from console.settings.secrets import SecretStore


class ClusterSession(QObject):
    changed = Signal()  # the model changed (a snapshot, a node lost or back)
    logs_added = Signal(list, bool)  # new LogRecords, appended at the end
    resync_changed = Signal(object)  # set of module names
    operation_changed = Signal(object)  # Operation
    alert = Signal(object)  # Alert

    def __init__(
        self,
        entry: ClusterEntry,
        secrets: SecretStore,
        timeouts: Timeouts | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.entry = entry
        self.name = entry.name
        self.model = ClusterModel(entry.name, entry.addresses)
        self.logs = LogStore()
        self.resync = ResyncHistory()
        self.ops = OperationTracker()
        self._alerts = AlertDetector()
        self._op_of_request: dict[int, int] = {}
        self.client = ClusterClient(
            entry.name,
            entry.addresses,
            entry.identity,
            self.handle_event,
            passphrase=lambda: secrets.get(entry.name),
            timeouts=timeouts,
        )
        # Moves finish (or time out) on model changes; this also fades old results.
        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._update_operations)

    def start(self) -> None:
        self.client.start()
        self._tick.start()

    async def close(self) -> None:
        self._tick.stop()
        await self.client.close()

    # ----- events from the client (in the loop's thread: the GUI thread) --------------
    def handle_event(self, event: ClientEvent) -> None:
        now = time.time()
        if isinstance(event, NodeSnapshot):
            self.model.apply_snapshot(event.node_id, event.status, event.received)
            self._model_changed(event.received)
        elif isinstance(event, NodeUnreachable):
            before = self.model.revision
            self.model.apply_unreachable(event.node_id, event.reason, event.since)
            if self.model.revision != before:
                self._model_changed(now)
        elif isinstance(event, LogEntries):
            records = [record_from_pb(e, event.node_id) for e in event.entries]
            self._alerts.note_transitions(records)  # why a primary left its role
            new, appended = self.logs.add(records)
            if new:
                self.logs_added.emit(new, appended)
        elif isinstance(event, CommandResult):
            self._on_result(event, now)

    def _model_changed(self, now: float) -> None:
        modules = self.resync.observe(self.model, now)
        self.changed.emit()
        if modules:
            self.resync_changed.emit(modules)
        for alert in self._alerts.update(self.model, now):
            self.alert.emit(alert)
        self._update_operations()

    def _on_result(self, result: CommandResult, now: float) -> None:
        op_id = self._op_of_request.pop(result.request_id, None)
        if op_id is None:
            return
        if result.delivered:
            op = self.ops.replied(op_id, result.accepted, result.message, now)
        else:
            op = self.ops.failed(op_id, result.message, now)
        if op is not None:
            self.operation_changed.emit(op)
            self._update_operations()

    def _update_operations(self) -> None:
        for op in self.ops.update(self.model, time.time()):
            self.operation_changed.emit(op)

    # ----- commands (called by the views after confirmation) ----------------------------
    def move(self, plan: MigrationPlan) -> Operation:
        """Send a planned migrate/swap to the module's primary (plan.send_to)."""
        return self.command(plan.module, plan.command, plan.send_to, target=plan.target)

    def command(
        self, module: str, command: int, node_id: str, *, target: str = "", fullsync: bool = False
    ) -> Operation:
        op = self.ops.start(module, command, node_id, target, time.time())
        rid = self.client.next_request_id()
        self._op_of_request[rid] = op.op_id
        self.client.send_command(node_id, module, command, request_id=rid, fullsync=fullsync)
        self.operation_changed.emit(op)
        return op
