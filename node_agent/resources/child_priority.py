"""Application commands run at the default CPU and OOM priority, not the agent's.

The unit gives the agent ``Nice=-5`` and ``OOMScoreAdjust=-900`` (its heartbeats must
neither starve nor be OOM-killed), and every child inherits both. An application -- a
database -- must not become nearly immune to the OOM killer, nor take the heartbeat's
priority edge. So each command is wrapped to reset both in the child before the
command's shell starts: a daemon that the command forks at once inherits 0/0 too (a
reset from the parent after the spawn would race with it; ``preexec_fn`` is unsafe in
the agent, which has threads). Only a favoured agent (< 0) is undone: raising either
value needs no privilege. The data planes are not started through here: they serve the
mounts and keep the agent's values.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

OOM_FILE = "/proc/self/oom_score_adj"
# $1... is the command to run; a failed write is said in the command's output, not fatal.
RESET_OOM = (
    "{ echo 0 >/proc/self/oom_score_adj; } 2>/dev/null || "
    'echo "mirrorpair: cannot reset oom_score_adj to 0" >&2; exec "$@"'
)


@dataclass(frozen=True)
class Priority:
    nice: int = 0
    oom_score_adj: int | None = 0  # None: not known (no /proc)


def agent_priority() -> Priority:
    """This process's nice value and oom_score_adj."""
    try:
        with open(OOM_FILE) as f:
            oom: int | None = int(f.read().strip())
    except (OSError, ValueError):
        oom = None
    return Priority(os.getpriority(os.PRIO_PROCESS, 0), oom)


def at_default_priority(argv: Sequence[str], agent: Priority, nice_bin: str | None) -> list[str]:
    """``argv`` wrapped to run at nice 0 and oom_score_adj 0 when the agent is favoured.

    ``nice -n N`` adds N to the inherited value; the shell wrapper writes the OOM
    adjustment and execs the rest (same pid: the command's process group is unchanged).
    """
    out = list(argv)
    if agent.nice < 0:
        if nice_bin:
            out = [nice_bin, "-n", str(-agent.nice), *out]
        else:
            log.warning("no nice command in %s: commands run at the agent's nice %d",
                        os.defpath, agent.nice)  # fmt: skip
    if agent.oom_score_adj is not None and agent.oom_score_adj < 0:
        out = ["/bin/sh", "-c", RESET_OOM, "sh", *out]
    return out


def application_argv(argv: Sequence[str]) -> list[str]:
    """``at_default_priority`` for this process (the I/O around the pure part)."""
    return at_default_priority(argv, agent_priority(), shutil.which("nice", path=os.defpath))
