"""Protecting a directory in place: what is in it becomes the module's data the first time;
later strays are moved aside, never lost or hidden (node_agent/replication/fuse/underneath.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from node_agent.replication.fuse.underneath import MARKER, settle_mountpoint
from tests.conftest import require


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}  # fmt: skip


def vm_dir(mp: Path) -> dict[str, bytes]:
    (mp / "disks").mkdir(parents=True)
    (mp / "vms.xml").write_bytes(b"<domain/>")
    (mp / "disks" / "system.img").write_bytes(os.urandom(70_000))
    os.symlink("disks/system.img", mp / "current")
    return tree(mp)


@pytest.mark.parametrize("same_fs", [True, False], ids=["rename", "copy across filesystems"])
def test_the_first_time_what_is_there_is_the_data(tmp_path: Path, same_fs: bool) -> None:
    shm = Path("/dev/shm")
    if not same_fs:
        other = shm.is_dir() and os.stat(shm).st_dev != os.stat(tmp_path).st_dev
        require(other, "needs a second filesystem (/dev/shm, a tmpfs) to copy across")
    base = tmp_path if same_fs else Path(tempfile.mkdtemp(dir=shm))
    try:
        mp, copy = base / "srv" / "vms", tmp_path / "data" / "copy" / "0"
        copy.mkdir(parents=True)
        before = vm_dir(mp)
        said: list[tuple[str, str]] = []
        assert settle_mountpoint(mp, copy, tmp_path / "q", lambda lv, m: said.append((lv, m)))
        assert tree(copy) == before and os.readlink(copy / "current") == "disks/system.img"
        assert list(mp.iterdir()) == [] and not (copy.parent / f"0{MARKER}").exists()
        assert said[0][0] == "info" and "protecting" in said[0][1] and "3 entries" in said[0][1]
    finally:
        if base != tmp_path:  # /dev/shm is memory, and nobody else cleans it: every run left one
            shutil.rmtree(base, ignore_errors=True)


def test_strays_found_later_are_moved_aside(tmp_path: Path) -> None:
    mp, copy, q = tmp_path / "mnt", tmp_path / "copy", tmp_path / "quarantine"
    copy.mkdir()
    (copy / "data").write_text("the module's")
    mp.mkdir()
    (mp / "stray.txt").write_text("written while not mounted")
    said: list[str] = []
    assert not settle_mountpoint(mp, copy, q, lambda lv, m: said.append(lv))
    (aside,) = q.iterdir()
    assert (aside / "stray.txt").read_text() == "written while not mounted"
    assert list(mp.iterdir()) == [] and tree(copy) == {"data": b"the module's"}
    assert said == ["warning"]
    assert not settle_mountpoint(mp, copy, q, lambda lv, m: said.append(lv))  # empty: nothing


def test_a_first_move_interrupted_by_a_crash_finishes_next_time(tmp_path: Path) -> None:
    mp, copy = tmp_path / "mnt", tmp_path / "copy"
    copy.mkdir()
    before = vm_dir(mp)
    (copy.parent / f"copy{MARKER}").touch()  # the crash: marker written, one entry moved
    os.rename(mp / "vms.xml", copy / "vms.xml")
    assert settle_mountpoint(mp, copy, tmp_path / "q", lambda lv, m: None)
    assert tree(copy) == before and not (tmp_path / "q").exists()
