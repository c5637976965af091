"""Which zombie children the agent reaps itself (pure; the driver is ``host.reaper``).

The agent is a child subreaper: a daemon that an application's start command leaves
behind (``myapp &`` in a shell that then exits) becomes the agent's child. When it
dies, no one else waits for it; a zombie passes ``kill -0`` and a pid-file check,
so the application would look alive. Children the agent started itself (commands,
data planes, libvirt's helpers) each have an owner that waits for them at once; a
zombie that no one reaped for ``grace_s`` has no owner, and is reaped here. Reaping an
owned child would rob its owner of the exit status, hence the grace, and the start
time kept with each pid (a pid reused in between is a different process).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

ORPHAN_GRACE_S = 2.0  # owners wait at once; a zombie older than this has none


@dataclass
class OrphanPlan:
    grace_s: float = ORPHAN_GRACE_S
    _first_seen: dict[tuple[int, int], float] = field(default_factory=dict)

    def due(self, zombies: Mapping[int, int], now: float) -> list[int]:
        """``zombies``: pid -> start time of each zombie child now. The pids to reap:
        zombies seen for at least ``grace_s``. Forgets those gone (reaped by anyone)."""
        seen = {}
        for pid, start in zombies.items():
            key = (pid, start)
            seen[key] = self._first_seen.get(key, now)
        self._first_seen = seen
        return sorted(pid for (pid, _), first in seen.items() if now - first >= self.grace_s)
