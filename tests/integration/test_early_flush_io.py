"""Both copies start writeback as data arrives: the primary's FUSE writes (real mount)
and the secondary's Applier call the kernel's sync_file_range on what they wrote.

The kernel call is the real one; a spy records its arguments on the way through.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from node_agent.replication import ops
from node_agent.replication.fuse.mount import Mount
from node_agent.replication.local import early_flush
from node_agent.replication.local.apply import Applier
from tests.conftest import require_fuse
from tests.integration.local_replicator import LocalReplicator

MiB = 1 << 20


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, int, int]]]:
    seen: list[tuple[str, int, int]] = []
    real = early_flush.start_writeback

    def spy(fd: int, offset: int, length: int) -> None:
        seen.append((os.readlink(f"/proc/self/fd/{fd}"), offset, length))
        real(fd, offset, length)

    monkeypatch.setattr(early_flush, "start_writeback", spy)
    yield seen


def _covered(calls: list[tuple[str, int, int]], path: Path, upto: int) -> int:
    """Bytes of [0, upto) of ``path`` that some call covered."""
    spans = sorted((o, o + n) for p, o, n in calls if p == str(path))
    done = 0
    for lo, hi in spans:
        if lo <= done < hi:
            done = min(hi, upto)
    return done


@pytest.mark.parametrize("enabled", [True, False])
def test_applier_starts_writeback_of_what_it_wrote(
    tmp_path: Path, calls: list[tuple[str, int, int]], enabled: bool
) -> None:
    (tmp_path / "f").write_bytes(b"")
    with Applier(tmp_path, early_flush=enabled) as a:
        for i in range(20):
            a.apply(ops.Write("f", i * MiB, os.urandom(MiB)))
    if not enabled:
        assert calls == []
        return
    # 20 MiB in 8 MiB spans: the first 16 MiB started, the tail waits for fsync.
    assert _covered(calls, (tmp_path / "f").resolve(), 20 * MiB) == 16 * MiB


def test_primary_mount_starts_writeback_of_the_backing_file(
    tmp_path: Path, calls: list[tuple[str, int, int]]
) -> None:
    require_fuse()
    backing, secondary, mnt = tmp_path / "backing", tmp_path / "secondary", tmp_path / "mnt"
    for d in (backing, secondary, mnt):
        d.mkdir()
    applier = Applier(secondary)
    mount = Mount(backing, mnt, LocalReplicator(applier))
    mount.start()
    try:
        data = os.urandom(24 * MiB)
        with open(mnt / "disk.img", "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        assert (backing / "disk.img").read_bytes() == data == (secondary / "disk.img").read_bytes()
    finally:
        mount.stop()
        applier.close()
    # Writeback was started on both copies' files, not left for the fsync.
    for copy in (backing, secondary):
        assert _covered(calls, (copy / "disk.img").resolve(), 24 * MiB) >= 16 * MiB, copy
