"""Split brain: before the losing node resyncs from the survivor, keep what it wrote on
its own in a quarantine folder (DESIGN §3: never thrown away, never merged silently)."""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path

from node_agent.replication.tracking.zones import ChangeSet


def quarantine(copy_root: Path, changes: ChangeSet | None, dest_root: Path) -> Path:
    """Copy the files the loser changed (all of its copy when no trustworthy record
    exists) to ``dest_root/<UTC time>/``, keeping relative paths. Returns that folder."""
    dest = dest_root / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest.mkdir(parents=True, exist_ok=False)
    if changes is None:
        shutil.copytree(copy_root, dest / "copy", symlinks=True, dirs_exist_ok=True)
        return dest
    for rel, _file in changes:
        src = copy_root / rel
        try:
            st = os.lstat(src)
        except FileNotFoundError:
            continue  # removed on the loser: nothing to keep
        target = dest / "copy" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if stat.S_ISDIR(st.st_mode):
            target.mkdir(exist_ok=True)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), target)
        elif stat.S_ISREG(st.st_mode):
            shutil.copy2(src, target)
    return dest
