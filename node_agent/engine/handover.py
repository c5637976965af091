"""What an agent leaving its modules running (SIGUSR2) tells the next one.

A replicated module's data plane says itself what it serves (leftovers.adopt). An
application module has none: without a word from its predecessor, the next agent cannot
tell an application it should take up from one a crashed agent left behind (which it
must stop: the peer may serve the module by now). So the leaving agent writes which
modules it served; the next agent takes the record once, and only if it is fresh: same
kernel boot, younger than the longest grace a peer grants (after that the peer has
judged this node silent and may serve the module itself).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

from node_agent.config.store import atomic_write
from node_agent.core.states import State
from node_agent.heartbeat.liveness import MAX_LEAVING_S

RECORD = "left-running.json"


@dataclass(frozen=True)
class LeftRunning:
    boot_id: str | None  # the kernel's: a record from before a reboot means nothing
    left_at: float  # wall clock (time.time()) when the agent left
    serving: dict[str, str]  # module -> PRIM or ALONE: what it served, left running

    def usable(self, now: float, boot_id: str | None) -> bool:
        return boot_id is not None and boot_id == self.boot_id and (
            0 <= now - self.left_at <= MAX_LEAVING_S)  # fmt: skip

    def state_of(self, module: str) -> State | None:
        state = State.__members__.get(self.serving.get(module, ""))
        return state if state is not None and state.is_primary else None


def write(data_dir: Path, record: LeftRunning) -> None:
    """Written whole or not at all (the agent exits right after)."""
    doc = {"boot_id": record.boot_id, "left_at": record.left_at, "serving": record.serving}
    atomic_write(data_dir / RECORD, json.dumps(doc).encode())


def take(data_dir: Path, now: float, boot_id: str | None) -> LeftRunning | None:
    """The predecessor's record, consumed (a later start must not act on it again);
    None when there is none, or it is stale or unreadable."""
    path = data_dir / RECORD
    try:
        doc = json.loads(path.read_text())
        record = LeftRunning(doc.get("boot_id"), float(doc["left_at"]),
                             {str(k): str(v) for k, v in dict(doc["serving"]).items()})  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # torn or foreign
        record = None
    with contextlib.suppress(OSError):
        path.unlink()
    return record if record is not None and record.usable(now, boot_id) else None
