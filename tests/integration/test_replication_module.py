"""ModuleReplication end to end, paired: writes reach the secondary before they return,
the durability points with and without the write cache, stream failures, a Ready peer
paired without a resync, bad input refused by the secondary (rig: repl_rig.py)."""

from __future__ import annotations

import mmap
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from node_agent.replication import ops
from node_agent.replication.local.apply import NotServing
from node_agent.replication.resync import requests as rq
from node_agent.replication.roles.primary import Mode
from node_agent.replication.stream.sender import (
    NotAcknowledged,
    RequestFailed,
    SenderState,
    StreamSender,
)
from tests.integration.repl_rig import (
    MiB,
    Pki,
    digest,
    in_thread,
    random_file,
    tree,
)


# -- REPLICATE ----------------------------------------------------------------------------
def test_a_write_returns_only_once_the_secondary_applied_it(nodes: Callable) -> None:
    n1, n2 = nodes()
    n1.mr.become_primary("g1", ("g1",))
    n1.pair(n2, None)
    results: list[bool] = []

    def app() -> None:
        fd = os.open(n1.mnt / "f", os.O_CREAT | os.O_WRONLY | os.O_DSYNC, 0o644)
        try:
            for i in range(100):
                data = bytes([i]) * 4096
                os.pwrite(fd, data, i * 4096)
                with open(n2.root / "0" / "f", "rb") as sec:  # at the moment it returned
                    results.append(os.pread(sec.fileno(), 4096, i * 4096) == data)
        finally:
            os.close(fd)
        fd = os.open(n1.mnt / "g", os.O_CREAT | os.O_WRONLY, 0o600)  # buffered, then fsync
        try:
            os.write(fd, b"y" * 300_000)
            os.fsync(fd)
            results.append((n2.root / "0" / "g").read_bytes() == b"y" * 300_000)
        finally:
            os.close(fd)

    t = in_thread(app)
    t.join(60)
    assert not t.is_alive() and results == [True] * 101
    assert ops.Fsync("0/g") in n2.applied  # the secondary synced too
    assert not n1.events and n1.mr.bitmap.changes().is_empty()


@pytest.mark.parametrize("machine_restarted", [False, True])
def test_zones_the_secondary_applied_are_resent_only_if_its_machine_restarted(
    nodes: Callable, machine_restarted: bool
) -> None:
    n1, n2 = nodes()
    n1.mr.become_primary("g1", ("g1",))
    n1.pair(n2, None)
    with open(n1.mnt / "f", "wb") as f:  # applied on node2 while paired: 8 zones
        f.write(os.urandom(8 * MiB))
        os.fsync(f.fileno())
    n2.kill()
    assert n1.wait_for("degraded")  # the stream broke (held, then released by the rig)
    with open(n1.mnt / "f", "r+b") as f:  # one zone changed while node2 is away
        f.seek(3 * MiB)
        f.write(b"changed")
        os.fsync(f.fileno())
    n2.reboot("boot-2" if machine_restarted else "boot-1")
    n1.mr.generation_changed("g2", ("g1", "g2"))
    st = n1.pair(n2, "g1")
    # Same kernel: its page cache kept every write it had applied; only the change goes.
    assert (st["record"], st["bytes_sent"]) == ("bitmap", (8 if machine_restarted else 1) * MiB)
    assert digest(n1.root / "0" / "f") == digest(n2.root / "0" / "f")


@pytest.mark.parametrize("write_cache", [True, False])
def test_durability_points_with_and_without_the_write_cache(
    nodes: Callable, write_cache: bool
) -> None:
    n1, n2 = nodes(mount_options={"writeback_cache": write_cache})
    n1.mr.become_primary("g1", ("g1",))
    n1.pair(n2, None)
    n2.apply_delay_s = 0.02  # so nothing can be there by luck
    secondary = n2.root / "0"
    seen: dict[str, bool] = {}

    def app() -> None:
        with open(n1.mnt / "plain", "wb", buffering=0) as f:  # no O_SYNC, no fsync
            for i in range(20):
                f.write(bytes([i]) * 8192)
                if not write_cache:  # every write() waits: there at once
                    got = (secondary / "plain").read_bytes()[i * 8192 : (i + 1) * 8192]
                    seen.setdefault("each write", True)
                    seen["each write"] &= got == bytes([i]) * 8192
        # close() (FLUSH, after the kernel wrote the dirty pages back): all there
        seen["close"] = (secondary / "plain").read_bytes() == b"".join(
            bytes([i]) * 8192 for i in range(20)
        )
        buf = mmap.mmap(-1, 1 << 20)  # O_DIRECT needs an aligned buffer
        buf.write(b"d" * (1 << 20))
        fd = os.open(n1.mnt / "direct", os.O_CREAT | os.O_WRONLY | os.O_DIRECT, 0o644)
        try:
            os.write(fd, buf)  # QEMU cache=none: synchronous whatever the cache
            with open(secondary / "direct", "rb") as sec:
                seen["O_DIRECT"] = sec.read() == b"d" * (1 << 20)
        finally:
            os.close(fd)

    t = in_thread(app)
    t.join(60)
    assert not t.is_alive()
    assert all(seen.values()) and len(seen) == (2 if write_cache else 3), seen


def test_stream_failure_mid_write_loses_nothing_and_tracks(nodes: Callable) -> None:
    n1, n2 = nodes()
    n1.mr.become_primary("g1", ("g1",))
    n1.pair(n2, None)
    acked: list[tuple[int, bytes]] = []
    stop = threading.Event()

    def app() -> None:
        rnd = random.Random(7)
        fd = os.open(n1.mnt / "f", os.O_CREAT | os.O_WRONLY | os.O_DSYNC, 0o644)
        try:
            while not stop.is_set():
                off, data = rnd.randrange(4096) * 4096, rnd.randbytes(4096)
                os.pwrite(fd, data, off)
                acked.append((off, data))
        finally:
            os.close(fd)

    t = in_thread(app)
    while len(acked) < 50:
        time.sleep(0.01)
    n2.kill()
    assert n1.wait_for("degraded", timeout=30)
    seen = len(acked)
    while len(acked) < seen + 50:
        time.sleep(0.01)
    stop.set()
    t.join(30)
    assert not t.is_alive() and n1.mr.primary.mode is Mode.TRACK
    last = dict(acked)  # the last write at each offset
    with open(n1.root / "0" / "f", "rb") as f:
        for off, data in last.items():
            assert os.pread(f.fileno(), 4096, off) == data
    # Written while alone: dirty. Before: applied on node2, but in doubt should node2's
    # machine (not just its agent) have restarted (peer_doubt.py).
    dirty = n1.mr.bitmap.changes()
    assert all(dirty.is_dirty("0/f", off // MiB) for off, _ in acked[seen:])
    doubt = n1.mr.doubt.take(None)
    assert doubt is not None
    assert all(dirty.is_dirty("0/f", off // MiB) or doubt.is_dirty("0/f", off // MiB)
               for off in last)  # fmt: skip


# -- the secondary refuses bad input ------------------------------------------------------
def test_resync_requests_naming_paths_outside_the_copy_are_refused(
    nodes: Callable, pki: Pki, tmp_path: Path
) -> None:
    _, n2 = nodes()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s" * 5000)
    (n2.root / "0" / "link").symlink_to(outside)
    (n2.root / "0" / "ok").write_bytes(b"ok")
    os.mkfifo(n2.root / "0" / "fifo")
    failures: list[list[ops.Op]] = []
    sender = StreamSender(
        module="mod", node_id="node1", peer="node2", host="127.0.0.1", port=n2.port,
        tls=pki.paths("node1"), generation="g1", on_failure=lambda r, o: failures.append(o),
        fallback=lambda op: None,
    )  # fmt: skip
    sender.connect()
    try:
        assert rq.decode_reply(rq.ListPage(0), sender.request(rq.encode_request(
            rq.ListPage(0)), 10))  # fmt: skip
        for bad in ["../outside/secret", "0/../../outside/secret", str(outside / "secret"),
                    "0/link/secret", "0/fifo", "0", "1/ok", "", "0//ok"]:  # fmt: skip
            req = rq.encode_request(rq.Hashes(bad, (0,), "blake2b-128", MiB))
            with pytest.raises(RequestFailed):
                sender.request(req, 10)
        with pytest.raises(RequestFailed, match="RequestError"):
            sender.request(b"\0\0\0\2{}", 10)
        with pytest.raises(NotAcknowledged, match="unsafe path"):  # an op: NACKed
            sender.enqueue(ops.Create("0/link/planted", 0o100644))()
        assert sender.state is SenderState.FAILED and failures
    finally:
        sender.close()
    assert sorted(os.listdir(outside)) == ["secret"]
    assert (outside / "secret").read_bytes() == b"s" * 5000


def test_the_secondary_applier_keeps_ops_inside_the_module(nodes: Callable) -> None:
    _, n2 = nodes()
    applier = n2.mr.secondary_applier()
    assert applier is not None
    for bad in [ops.Create("1/x", 0o100644), ops.Rmdir("0"), ops.Rename("0", "zz"),
                ops.Chmod("", 0o777), ops.Create("x", 0o100644)]:  # fmt: skip
        with pytest.raises(ValueError):
            applier.apply(bad)
    applier.apply(ops.Create("0/fine", 0o100644))
    n2.mr.leave_secondary()  # a lingering stream must not change anything any more
    with pytest.raises(NotServing):
        applier.apply(ops.Create("0/late", 0o100644))
    applier.close()
    assert sorted(os.listdir(n2.root)) == ["0"] and os.listdir(n2.root / "0") == ["fine"]


# -- a Ready peer: no resync --------------------------------------------------------------
def test_a_ready_peer_with_nothing_tracked_goes_straight_to_replicate(nodes: Callable) -> None:
    n1, n2 = nodes()
    random_file(n1.root / "0" / "a", 4 * MiB, 1)
    n1.mr.become_primary("g1", ("g1",))
    n1.pair(n2, None)
    n1.mr.peer_gone()  # a heartbeat blip; nothing written meanwhile
    assert n1.wait_for("degraded")  # held, then released by the (test's) gate
    assert n1.mr.primary.mode is Mode.TRACK
    n1.mr.generation_changed("g2", ("g1", "g2"))
    n1.mr.peer_is_secondary("g1", transient=False)
    assert n1.wait_for("replicating", "failed", "degraded") == ("replicating",)
    assert n1.mr.status()["stream_bytes_sent"] < 10_000  # no data, just begin and done
    assert n2.history == ("g1", "g2")  # the secondary took the primary's history
    assert n1.mr.bitmap.base_generation == n2.mr.bitmap.base_generation == "g2"
    with open(n1.mnt / "a", "r+b") as f:
        f.write(b"new")
        os.fsync(f.fileno())
    assert (n2.root / "0" / "a").read_bytes()[:3] == b"new"


def test_a_ready_peer_missing_tracked_changes_is_outdated_then_resynced(
    nodes: Callable,
) -> None:
    n1, n2 = nodes()
    random_file(n1.root / "0" / "a", 4 * MiB, 1)
    n1.mr.become_primary("g1", ("g1",))
    n1.pair(n2, None)
    n1.mr.peer_gone()
    assert n1.wait_for("degraded")
    with open(n1.mnt / "a", "r+b") as f:
        f.seek(2 * MiB)
        f.write(b"tracked")
        os.fsync(f.fileno())
    n1.gate = None
    n1.mr.generation_changed("g2", ("g1", "g2"))
    n1.mr.peer_is_secondary("g1", transient=False)  # claims a current copy: it is not
    ev = n1.wait_for("replicating", "failed", "degraded")
    assert ev[0] == "degraded" and n1.mr.primary.mode is Mode.HELD
    assert n2.history == ("g1",), "resync-done must not reach a peer that lacks changes"
    n1.mr.resolve_hold(ev[2], True)  # the engine: once the peer acknowledged the outdate
    n1.mr.peer_is_secondary("g1", transient=True)  # it resyncs as a Transient secondary
    assert n1.wait_for("replicating", "failed", "degraded") == ("replicating",)
    st = n1.mr.status()
    assert st["record"] == "bitmap" and st["bytes_sent"] == MiB
    assert digest(n1.root / "0" / "a") == digest(n2.root / "0" / "a")


def test_an_unreachable_ready_peer_blocks_writes_then_degrades(nodes: Callable) -> None:
    n1, n2 = nodes(connect_timeout_s=1.0)
    n1.mr.become_primary("g1", ("g1",))
    n1.pair(n2, None)
    n1.mr.peer_gone()
    assert n1.wait_for("degraded")
    n2.kill()
    n1.mr.peer_is_secondary("g1", transient=False)  # believed Ready: CONNECTING

    def app() -> None:
        (n1.mnt / "late").write_bytes(b"x" * 5000)

    t = in_thread(app)
    assert n1.wait_for("degraded", "replicating", timeout=30)[0] == "degraded"
    t.join(30)
    assert not t.is_alive() and n1.mr.primary.mode is Mode.TRACK
    assert n1.mr.bitmap.changes().namespace_dirty("0/late")
    assert not [e for e in n1.events if e[0] != "degraded"]


def test_a_module_with_two_directories(nodes: Callable, tmp_path: Path) -> None:
    n1, n2 = nodes(dirs=2)
    random_file(n1.root / "1" / "before", 2 * MiB, 1)  # resynced
    n1.mr.become_primary("g1", ("g1",))
    n1.pair(n2, None)
    second = tmp_path / "mnt1"
    for mnt in (n1.mnt, second):  # replicated, each into its own directory
        (mnt / "d").mkdir()
        (mnt / "d" / "f").write_text(str(mnt))
        os.rename(mnt / "d" / "f", mnt / "d" / "g")
    assert (n2.root / "1" / "d" / "g").read_text() == str(second)
    assert (n2.root / "0" / "d" / "g").read_text() == str(n1.mnt)
    assert tree(n1.root, times=False) == tree(n2.root, times=False)
