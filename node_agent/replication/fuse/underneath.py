"""What lies in a replicated directory before the primary mounts over it (issue 11).

"Just name the VM's directory": the first time a module is protected, the data already
in its directory *is* the module's data. It is moved into this node's copy (a rename per
entry on one filesystem, else a copy then a removal), and the mount then shows it again
at the same path. Anything found there later (written while the module was not mounted
on this node) is moved aside, never deleted and never hidden under the mount: failover
must not stop on stray files, and nothing may be lost.

A marker makes the first move resumable: an agent killed halfway finishes it on its next
start instead of taking the half left behind for strays.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

MARKER = ".mirrorpair-taking"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def move_entry(src: Path, dest_dir: Path) -> None:
    """Move one entry into dest_dir: rename on one filesystem, else copy, sync, remove."""
    dest = dest_dir / src.name
    if os.stat(src.parent).st_dev == os.stat(dest_dir).st_dev:
        os.rename(src, dest)
        return
    if src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dest, symlinks=True, copy_function=shutil.copy2)
    else:
        shutil.copy2(src, dest, follow_symlinks=False)
    if dest.is_file() and not dest.is_symlink():
        with open(dest, "rb") as fh:
            os.fsync(fh.fileno())
    fsync_dir(dest_dir)
    if src.is_dir() and not src.is_symlink():
        shutil.rmtree(src)
    else:
        src.unlink()


def settle_mountpoint(
    mountpoint: Path, copy: Path, aside_root: Path, log: Callable[[str, str], None]
) -> bool:
    """Empty ``mountpoint`` (not mounted) before the primary mounts over it: into
    ``copy`` the first time (``copy`` empty, or a first move was interrupted), else
    aside under ``aside_root``. True when the copy took data no change record knows."""
    if not mountpoint.is_dir() or os.path.ismount(mountpoint):
        return False
    marker = copy.parent / f"{copy.name}{MARKER}"
    entries = sorted(mountpoint.iterdir())
    if not entries and not marker.exists():
        return False
    if marker.exists() or not any(copy.iterdir()):
        marker.touch()
        fsync_dir(marker.parent)
        for entry in entries:
            move_entry(entry, copy)
        fsync_dir(copy)
        marker.unlink()
        fsync_dir(marker.parent)
        log("info", f"protecting {mountpoint} in place: its {len(entries)} entries are "
            "this module's data from now on (moved into this node's copy)")  # fmt: skip
        return True
    aside = aside_root / time.strftime("%Y%m%d-%H%M%S-under-mount")
    aside.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        move_entry(entry, aside)
    log(
        "warning",
        f"{len(entries)} entries were in {mountpoint} while the module was not "
        f"mounted on this node (written behind its back?): moved aside to {aside}",
    )
    return False
