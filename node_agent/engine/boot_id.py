"""A boot id that grows across restarts even if the clock steps back, so the peer's
replay check (boot_id, seq) never rejects a restarted agent for good."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path


def next_boot_id(path: Path) -> int:
    last = 0
    with contextlib.suppress(FileNotFoundError, ValueError):
        last = int(path.read_text().strip() or 0)
    boot_id = max(time.time_ns(), last + 1)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(boot_id))
    os.replace(tmp, path)
    return boot_id
