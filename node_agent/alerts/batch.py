"""Alerts gathered into one e-mail (docs/alerts.md, "One message for many modules").

A server that fails over 64 modules makes 64 "failover" alerts within a second or two;
the operator wants one message saying so, not 64. ``MailBatcher`` holds each alert for at
most ``window_s`` after the first one it holds, then hands them out together: one
``Batch``, in the order they came. Pure: every call is given the time, no I/O.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from node_agent.alerts.policy import Alert


@dataclass(frozen=True)
class Batch:
    alerts: tuple[Alert, ...]

    @property
    def first(self) -> Alert:
        return self.alerts[0]

    def counts(self) -> list[tuple[str, int]]:
        """(kind, how many), in the order each kind first came."""
        return list(Counter(a.kind.value for a in self.alerts).items())


class MailBatcher:
    def __init__(self, window_s: float) -> None:
        self.window_s = window_s  # may change between calls (a new configuration)
        self._held: list[Alert] = []
        self._since = 0.0  # when the first held alert came

    def add(self, alert: Alert, now: float) -> list[Batch]:
        if not self._held:
            self._since = now
        self._held.append(alert)
        return self.due(now)

    def due(self, now: float) -> list[Batch]:
        if not self._held or now - self._since < self.window_s:
            return []
        batch, self._held = Batch(tuple(self._held)), []
        return [batch]

    def flush(self) -> list[Batch]:
        """Everything held, now (the agent stops)."""
        batch, self._held = self._held, []
        return [Batch(tuple(batch))] if batch else []
