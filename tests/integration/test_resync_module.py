"""ModuleReplication end to end, resynchronizing: from the bitmap, by hashes, the namespace,
the application writing meanwhile, progress and the bandwidth cap, crashes and
interruptions (rig: repl_rig.py)."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable

import pytest

from node_agent.replication import ops
from node_agent.replication.roles.primary import Mode
from tests.integration.repl_rig import (
    MiB,
    Node1,
    digest,
    in_thread,
    random_file,
    tree,
    twin,
    write_behind,
)


# -- resync -------------------------------------------------------------------------------
def test_resync_from_the_bitmap_sends_about_what_changed(nodes: Callable) -> None:
    n1, n2 = nodes()
    big = n1.root / "0" / "big"
    random_file(big, 256 * MiB, seed=1)
    twin(big, n2.root / "0" / "big")
    n1.mr.become_primary("g1", ("g1",))
    first = n1.pair(n2, None)  # no record yet: hashes, all equal
    assert first["record"] == "hashes" and first["bytes_sent"] == 0
    n2.kill()
    n1.wait_for("degraded", timeout=30)
    n1.mr.generation_changed("g2", ("g1", "g2"))
    rnd = random.Random(3)
    zones = rnd.sample(range(256), 3)  # ~1 %, written while the secondary is away
    fd = os.open(n1.mnt / "big", os.O_WRONLY)
    try:
        for z in zones:
            os.pwrite(fd, rnd.randbytes(MiB), z * MiB)
        os.fsync(fd)
    finally:
        os.close(fd)
    n2.start()
    st = n1.pair(n2, "g1")
    changed = len(zones) * MiB
    assert st["record"] == "bitmap" and st["bytes_sent"] == changed
    assert st["stream_bytes_sent"] < 2 * changed  # everything on the wire, frames included
    assert digest(big) == digest(n2.root / "0" / "big")
    assert n1.mr.bitmap.base_generation == "g2" and n1.mr.bitmap.changes().is_empty()


@pytest.mark.parametrize("how", ["fullsync", "foreign generation", "changed mtime"])
def test_hash_compare_finds_a_change_made_behind_the_agents_back(nodes: Callable, how: str) -> None:
    n1, n2 = nodes()
    data = n1.root / "0" / "data"
    random_file(data, 32 * MiB, seed=2)
    twin(data, n2.root / "0" / "data")
    n1.mr.become_primary("g1", ("g1",))
    n1.pair(n2, None)
    n2.kill()
    n1.wait_for("degraded", timeout=30)
    theirs = n2.root / "0" / "data"
    # "fullsync": size and mtime kept as well, so only a fullsync can find it
    write_behind(theirs, 7 * MiB + 123, b"corrupted by hand", keep_times=how == "fullsync")
    if how == "foreign generation":
        n2.history = ("g0",)
    n2.start()
    res = n1.pair(n2, n2.history[-1], fullsync=how == "fullsync")
    # "changed mtime": the record is trusted but does not explain the change: hashes decide
    assert res["record"] == ("bitmap" if how == "changed mtime" else "hashes")
    assert res["bytes_sent"] == MiB and res["hash_bytes"] == 32 * MiB
    assert tree(n1.root) == tree(n2.root)


def test_namespace_is_reconciled(nodes: Callable) -> None:
    n1, n2 = nodes()
    p, s = n1.root / "0", n2.root / "0"
    random_file(p / "keep.bin", MiB, 1)
    twin(p / "keep.bin", s / "keep.bin")
    random_file(p / "dir" / "sub" / "missing.bin", 2 * MiB, 2)
    random_file(p / "moved.bin", 3 * MiB, 3)
    twin(p / "moved.bin", s / "old-name.bin")  # same bytes and mtime: renamed, not copied
    random_file(p / "size.bin", 2 * MiB, 4)
    random_file(s / "size.bin", 5 * MiB, 4)  # same first 2 MiB, longer
    random_file(p / "mode.sh", MiB, 5)
    twin(p / "mode.sh", s / "mode.sh")
    os.chmod(p / "mode.sh", 0o750)
    (p / "link").symlink_to("keep.bin")
    (s / "link").symlink_to("elsewhere")
    (p / "emptydir").mkdir(mode=0o700)
    random_file(s / "extra-dir" / "x", MiB, 6)
    (s / "extra.txt").write_text("extra")
    (p / "kind").write_text("a file here")
    (s / "kind").mkdir()
    (s / "kind" / "inside").write_text("a directory there")
    (p / "hl1").write_text("linked")
    os.link(p / "hl1", p / "hl2")
    n1.mr.become_primary("g1", ("g1",))
    res = n1.pair(n2, None)
    assert tree(n1.root) == tree(n2.root)
    assert os.stat(s / "hl1").st_ino == os.stat(s / "hl2").st_ino
    assert ops.Rename("0/old-name.bin", "0/moved.bin") in n2.applied
    assert res["bytes_sent"] <= 2 * MiB + 2 * MiB + 100  # missing.bin and size.bin at most


def test_the_application_keeps_writing_during_the_resync(nodes: Callable) -> None:
    n1, n2 = nodes(bandwidth_cap=24 * MiB)  # the data phase lasts ~2 s
    big = n1.root / "0" / "big"
    random_file(big, 48 * MiB, seed=8)
    random_file(n2.root / "0" / "big", 48 * MiB, seed=9)  # all different
    random_file(n1.root / "0" / "other", 4 * MiB, seed=10)
    n1.mr.become_primary("g1", ("g1",))
    acked: dict[int, bytes] = {}
    stop, errors, modes = threading.Event(), [], set()

    def app() -> None:
        rnd = random.Random(11)
        fd = os.open(n1.mnt / "big", os.O_WRONLY)
        try:
            i = 0
            while not stop.is_set():
                off, data = rnd.randrange(48 * MiB // 4096) * 4096, rnd.randbytes(4096)
                os.pwrite(fd, data, off)
                os.fsync(fd)
                acked[off] = data
                modes.add(n1.mr.primary.mode)
                i += 1
                if i % 25 == 0:  # namespace changes during the resync, too
                    tmp = n1.mnt / f"tmp-{i}"
                    tmp.write_bytes(rnd.randbytes(rnd.randrange(1, 300_000)))
                    os.rename(tmp, n1.mnt / f"file-{i}")
                    if i % 50 == 0:
                        os.unlink(n1.mnt / f"file-{i - 25}")
        except BaseException as e:
            errors.append(e)
        finally:
            os.close(fd)

    t = in_thread(app)
    time.sleep(0.3)
    st = n1.pair(n2, None)
    time.sleep(0.5)  # and after it, replicated
    stop.set()
    t.join(60)
    assert not t.is_alive() and not errors
    assert st["record"] == "hashes" and len(acked) > 50
    assert {Mode.TRACK, Mode.RESYNC, Mode.REPLICATE} <= modes  # before, during and after
    assert tree(n1.root, times=False) == tree(n2.root, times=False)
    with open(n2.root / "0" / "big", "rb") as f:
        for off, data in acked.items():
            assert os.pread(f.fileno(), 4096, off) == data


def test_progress_is_reported_and_the_bandwidth_cap_paces(nodes: Callable) -> None:
    n1, n2 = nodes(bandwidth_cap=12 * MiB)
    slept: list[float] = []
    virtual = [0.0]  # the pacer's clock moves only by the pauses it asks for

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        virtual[0] += seconds
        time.sleep(seconds)  # really, so that progress can be watched meanwhile

    n1.mr.session_options = {"sleep": sleep, "clock": lambda: virtual[0]}
    random_file(n1.root / "0" / "big", 24 * MiB, seed=12)
    n1.mr.become_primary("g1", ("g1",))
    samples = []
    n1.mr.peer_is_secondary(None, transient=True, fullsync=False)
    while not n1.events:
        samples.append(n1.mr.progress())
        time.sleep(0.05)
    assert n1.wait_for("replicating", "failed") == ("replicating",)
    active = [s for s in samples if s.active and s.bytes_total]
    assert active and all(s.bytes_total == 24 * MiB for s in active)
    done = [s.bytes_done for s in active]
    assert done == sorted(done) and done[-1] > done[0]
    assert any(s.eta is not None and s.rate > 0 for s in active)
    assert not n1.mr.progress().active and n1.mr.progress().bytes_done == 24 * MiB
    # computed pacing: 24 MiB at 12 MiB/s after a 1 MiB burst (not a wall-clock check)
    assert sum(slept) == pytest.approx(23 / 12, rel=1e-6)


def test_a_finished_resync_reports_100_percent(nodes: Callable) -> None:
    # Planned files renamed or removed while the resync runs need no copy in the end:
    # the finished resync still reports everything done (the console shows 100 %, not
    # "56 %, ETA 1 s" for a resync that is over).
    n1, n2 = nodes(bandwidth_cap=8 * MiB)  # the data phase lasts ~3 s
    for i in range(6):
        random_file(n1.root / "0" / f"f{i}", 4 * MiB, seed=i)
    n1.mr.become_primary("g1", ("g1",))

    def app() -> None:
        time.sleep(0.6)  # files not sent yet
        for i in range(3, 6):
            os.rename(n1.mnt / f"f{i}", n1.mnt / f"g{i}")
        os.unlink(n1.mnt / "f2")

    t = in_thread(app)
    st = n1.pair(n2, None)
    t.join(30)
    assert st["phase"] == "done" and st["bytes_sent"] < 24 * MiB  # some zones were skipped
    assert tree(n1.root) == tree(n2.root)
    p = n1.mr.progress()
    assert not p.active and p.bytes_total > 0 and p.bytes_done == p.bytes_total, p
    assert p.eta == 0.0


def test_without_a_cap_nothing_is_paced(nodes: Callable) -> None:
    n1, n2 = nodes()
    slept: list[float] = []
    n1.mr.session_options = {"sleep": slept.append}
    random_file(n1.root / "0" / "big", 24 * MiB, seed=12)
    n1.mr.become_primary("g1", ("g1",))
    assert n1.pair(n2, None)["bytes_sent"] == 24 * MiB and not slept


# -- crashes and interruptions ------------------------------------------------------------
def test_zones_a_crashed_primary_had_in_flight_are_resynced(nodes: Callable) -> None:
    n1, n2 = nodes()
    big = n1.root / "0" / "big"
    random_file(big, 16 * MiB, seed=5)
    twin(big, n2.root / "0" / "big")
    n1.mr.become_primary("g1", ("g1",))
    n1.pair(n2, None)
    n2.kill()
    n1.wait_for("degraded", timeout=30)
    # node2 "was a primary that crashed with a write to zone 5 in flight": its activity
    # log says so, and its zone 5 holds bytes node1 never got (size and mtime unchanged)
    n2.mr.activity.begin(ops.Write("0/big", 5 * MiB, b"x"))
    theirs = n2.root / "0" / "big"
    write_behind(theirs, 5 * MiB, b"in flight when it crashed")
    n2.start()
    res = n1.pair(n2, "g1")
    assert res["record"] == "bitmap" and res["bytes_sent"] == MiB
    assert digest(big) == digest(theirs)
    assert n2.mr.activity.load().is_empty()  # cleared by resync-done


def _wait_for_data(n1: Node1, nbytes: int) -> None:
    deadline = time.monotonic() + 60
    while n1.mr.progress().bytes_done < nbytes:
        assert time.monotonic() < deadline and not n1.events, n1.events
        time.sleep(0.02)


def test_an_interrupted_resync_is_completed_by_the_next(nodes: Callable) -> None:
    n1, n2 = nodes(bandwidth_cap=8 * MiB)
    random_file(n1.root / "0" / "big", 32 * MiB, seed=20)
    random_file(n2.root / "0" / "big", 32 * MiB, seed=21)
    n1.mr.become_primary("g1", ("g1",))
    n1.mr.peer_is_secondary(None, transient=True)
    _wait_for_data(n1, 4 * MiB)
    n2.kill()  # mid data phase
    assert n1.wait_for("failed", "replicating", "degraded", timeout=30)[0] == "failed"
    assert n1.mr.primary.mode is Mode.TRACK and not n1.mr.progress().active
    n2.start()
    n1.mr.bandwidth_cap = None
    n1.pair(n2, None)
    assert tree(n1.root) == tree(n2.root)


@pytest.mark.parametrize("how", ["stop_primary", "peer_gone"])
def test_stopping_during_a_resync_does_not_hang(nodes: Callable, how: str) -> None:
    n1, n2 = nodes(bandwidth_cap=4 * MiB)
    random_file(n1.root / "0" / "big", 32 * MiB, seed=22)
    n1.mr.become_primary("g1", ("g1",))
    n1.mr.peer_is_secondary(None, transient=True)
    _wait_for_data(n1, 2 * MiB)
    t = in_thread(getattr(n1.mr, how))
    t.join(30)
    assert not t.is_alive() and n1.mr.primary.mode is Mode.TRACK
    assert not n1.events  # asked for: no callback
    if how == "stop_primary":
        assert not os.path.ismount(n1.mnt)
    else:
        n1.mr.bandwidth_cap = None
        n1.pair(n2, None)
        assert tree(n1.root) == tree(n2.root)
