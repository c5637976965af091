"""What an agent's alerts said, kept across its restarts (docs/alerts.md).

An agent restarted while a module runs alone (an upgrade, a crash and systemd's restart)
would otherwise forget its "failover" or "degraded": it would send "degraded" again once
``settle_s`` had passed, and no "restored" when the pair came back. The dispatcher keeps
the policy's open episodes in ``DATA/alerts-sent.json`` and takes them up at start if
they are of this kernel boot (after a reboot every module starts anew, as before).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from node_agent.config.store import atomic_write

RECORD = "alerts-sent.json"
Memory = dict[str, tuple[list[str], list[float]]]  # module -> (kinds sent, restored at)


def save(data_dir: Path, boot_id: str | None, episodes: Memory) -> None:
    """Written whole or not at all (only when an episode opens or closes: rare)."""
    modules = {m: {"sent": k, "restored_at": r} for m, (k, r) in episodes.items()}
    doc = {"boot_id": boot_id, "modules": modules}
    atomic_write(data_dir / RECORD, json.dumps(doc).encode())


def load(data_dir: Path, boot_id: str | None) -> Memory:
    """The episodes of this boot ({} if none, from another boot, or unreadable)."""
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError, KeyError):
        doc = json.loads((data_dir / RECORD).read_text())
        if boot_id is None or doc.get("boot_id") != boot_id:
            return {}
        return {str(m): ([str(k) for k in v["sent"]], [float(t) for t in v["restored_at"]])
                for m, v in dict(doc["modules"]).items()}  # fmt: skip
    return {}
