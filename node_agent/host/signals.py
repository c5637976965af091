"""What the agent does on a signal (the handlers are in node_agent.main)."""

from __future__ import annotations

import enum
import signal


class SignalAction(enum.Enum):
    STOP = "stop"  # a clean stop: every module stopped, the peer takes over at once
    LEAVE_RUNNING = "leave running"  # exit at once, the modules served on
    IGNORE = "ignore"


def signal_action(signum: int, *, stopping: bool) -> SignalAction:
    """SIGTERM/SIGINT stop cleanly, once: a second one must not interrupt the stop.
    SIGUSR2 leaves the modules running -- unless a clean stop began: its "leaving"
    heartbeat would have the peer keep this node's last view while the modules here
    are being stopped."""
    if stopping:
        return SignalAction.IGNORE
    if signum in (signal.SIGTERM, signal.SIGINT):
        return SignalAction.STOP
    if signum == signal.SIGUSR2:
        return SignalAction.LEAVE_RUNNING
    return SignalAction.IGNORE
