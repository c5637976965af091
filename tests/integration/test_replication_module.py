"""ModuleReplication end to end: real FUSE mounts, real mutual-TLS streams on 127.0.0.1.

node1, the primary: a ModuleReplication whose directory is mounted (FUSE over its copy).
node2, the secondary: a StreamReceiver (own event loop thread) whose resolve and request
hook go to a second ModuleReplication in SECOND role (resync_server + CopyApplier over its
own copy directory). Both use certificates of a CA made in tmp_path.
"""

from __future__ import annotations

import asyncio
import hashlib
import mmap
import os
import random
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from node_agent.config.model import NodePaths
from node_agent.replication import ops
from node_agent.replication import requests as rq
from node_agent.replication.apply import Applier
from node_agent.replication.module_repl import ModuleReplication
from node_agent.replication.primary import Mode
from node_agent.replication.receiver import StreamReceiver
from node_agent.replication.scan import DIR, FILE, scan_tree
from node_agent.replication.sender import (
    NotAcknowledged,
    RequestFailed,
    SenderState,
    StreamSender,
)
from node_agent.tls.ca import create_ca, issue_certificate
from tests.conftest import require, require_binary, require_root

MiB = 1 << 20


def _require_fuse() -> None:
    require_root()
    require(os.path.exists("/dev/fuse"), "needs /dev/fuse")
    require_binary("fusermount3")


@dataclass(frozen=True)
class Pki:
    dir: Path

    def paths(self, name: str) -> NodePaths:
        d = self.dir
        return NodePaths(d, d / "ca" / "ca.pem", d / "certs" / f"{name}.pem",
                         d / "certs" / f"{name}.key")  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    create_ca(d / "ca", "test")
    for node in ("node1", "node2"):
        issue_certificate(d / "ca", node, d / "certs")
    return Pki(d)


class Node2:
    """The secondary: receiver + ModuleReplication in SECOND role; records applied ops."""

    def __init__(self, tmp: Path, pki: Pki, dirs: int = 1) -> None:
        self.pki, self.root, self.tmp, self.dirs = pki, tmp / "n2" / "copy", tmp, dirs
        self.history: tuple[str, ...] = ()
        self.applied: list[ops.Op] = []
        self.apply_delay_s = 0.0  # a slow secondary: ACKs lag behind
        self.mr = self._replication("boot-1")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.rx: StreamReceiver | None = None
        self.port = 0

    def _replication(self, kernel: str) -> ModuleReplication:
        return ModuleReplication(
            "mod", [self.tmp / f"n2-unused{i}" for i in range(self.dirs)], self.root,
            self.tmp / "n2" / "track", "node2", "node1", "127.0.0.1", 0,
            self.pki.paths("node2"), on_resync_done=self._done, kernel=kernel,
        )  # fmt: skip

    def reboot(self, kernel: str) -> None:
        """The agent comes back (its records reloaded from disk) under ``kernel``'s boot
        id: a new one means its machine restarted (its unsynced writes may be gone)."""
        self.kill()
        self.mr = self._replication(kernel)
        self.start()

    def _done(self, generation: str, history: tuple[str, ...]) -> None:
        self.history = history

    def _resolve(self, module: str) -> Applier | None:
        applier = self.mr.secondary_applier() if module == "mod" else None
        if applier is not None:
            apply = applier.apply

            def recording(op: ops.Op) -> None:
                time.sleep(self.apply_delay_s)
                apply(op)
                self.applied.append(op)

            applier.apply = recording  # type: ignore[method-assign]
        return applier

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def start(self) -> None:
        """Listen (again on the same port after kill) and be SECOND."""
        self.mr.become_secondary(self.history)
        self.rx = StreamReceiver(
            node_id="node2", peer="node1", tls=self.pki.paths("node2"), host="127.0.0.1",
            port=self.port, resolve=self._resolve,
            handle_request=lambda module, body: self.mr.handle_request(body),
        )  # fmt: skip
        self.port = self.call(self.rx.start())

    def kill(self) -> None:
        """The secondary disappears: listener and streams closed."""
        if self.rx is not None:
            self.call(self.rx.close())
            self.rx = None
        self.mr.leave_secondary()

    def close(self) -> None:
        self.kill()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class Node1:
    """The primary's ModuleReplication, its callbacks recorded. A hold is resolved at once
    by ``gate`` (True: open, as once the peer acknowledged it is outdated; False: fence;
    None: left to the test) -- the engine's write gate, in short."""

    def __init__(self, tmp: Path, pki: Pki, port: int, dirs: int = 1, **kw: Any) -> None:
        self.root, self.mnt = tmp / "n1" / "copy", tmp / "mnt"
        mounts = [self.mnt] + [tmp / f"mnt{i}" for i in range(1, dirs)]
        self.events: list[tuple[str, ...]] = []
        self._cond = threading.Condition()
        self.gate: bool | None = True
        self.mr = ModuleReplication(
            "mod", mounts, self.root, tmp / "n1" / "track", "node1", "node2", "127.0.0.1",
            port, pki.paths("node1"), ack_timeout_s=3.0,
            on_degraded=self._held,
            on_replicating=lambda: self._event("replicating"),
            on_resync_failed=lambda r: self._event("failed", r), **kw,
        )  # fmt: skip

    def _event(self, *ev: str) -> None:
        with self._cond:
            self.events.append(ev)
            self._cond.notify_all()

    def _held(self, reason: str, hold: str, requested: bool) -> None:
        if self.gate is not None:
            self.mr.resolve_hold(hold, self.gate)
        self._event("degraded", reason, hold)

    def wait_for(self, *kinds: str, timeout: float = 120.0) -> tuple[str, ...]:
        """The first event of one of ``kinds`` not yet consumed."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i, ev in enumerate(self.events):
                    if ev[0] in kinds:
                        return self.events.pop(i)
                left = deadline - time.monotonic()
                assert left > 0, f"no {kinds} event within {timeout} s: {self.events}"
                self._cond.wait(left)

    def pair(self, n2: Node2, peer_gen: str | None, *, fullsync: bool = False) -> dict:
        self.mr.peer_is_secondary(peer_gen, transient=True, fullsync=fullsync)
        ev = self.wait_for("replicating", "failed")
        assert ev == ("replicating",), ev
        assert self.mr.primary.mode is Mode.REPLICATE
        return self.mr.status()


@pytest.fixture
def nodes(tmp_path: Path, pki: Pki) -> Iterator[Callable[..., tuple[Node1, Node2]]]:
    _require_fuse()
    made: list[tuple[Node1, Node2]] = []

    def make(dirs: int = 1, **kw: Any) -> tuple[Node1, Node2]:
        n2 = Node2(tmp_path, pki, dirs)
        n2.start()
        n1 = Node1(tmp_path, pki, n2.port, dirs, **kw)
        made.append((n1, n2))
        return n1, n2

    yield make
    for n1, n2 in made:
        n1.mr.stop_primary()
        n2.close()


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def tree(root: Path, times: bool = True) -> dict[str, tuple]:
    """What must be equal on both copies (inode numbers aside)."""
    out = {}
    for e in scan_tree(root).values():
        if e.path:
            t = (e.mtime_ns,) if times and e.kind != DIR else ()
            data = digest(root / e.path) if e.kind == FILE else e.target
            out[e.path] = (e.kind, stat.S_IMODE(e.mode), e.uid, e.gid, e.size, data, *t)
    return out


def random_file(path: Path, size: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        for _ in range(size // MiB):
            f.write(rnd.randbytes(MiB))


def twin(src: Path, dst: Path) -> None:
    """The same file on the secondary, times included (an identical copy)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


def in_thread(fn: Callable[[], None]) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


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
    st = theirs.stat()
    with open(theirs, "r+b") as f:  # the agent was stopped: no record of this
        f.seek(7 * MiB + 123)
        f.write(b"corrupted by hand")
    if how == "fullsync":  # size and mtime kept: only fullsync can find it
        os.utime(theirs, ns=(st.st_atime_ns, st.st_mtime_ns))
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


def test_without_a_cap_nothing_is_paced(nodes: Callable) -> None:
    n1, n2 = nodes()
    slept: list[float] = []
    n1.mr.session_options = {"sleep": slept.append}
    random_file(n1.root / "0" / "big", 24 * MiB, seed=12)
    n1.mr.become_primary("g1", ("g1",))
    assert n1.pair(n2, None)["bytes_sent"] == 24 * MiB and not slept


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
            sender.replicate(ops.Create("0/link/planted", 0o100644))
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
    with pytest.raises(PermissionError):
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
    st = theirs.stat()
    with open(theirs, "r+b") as f:
        f.seek(5 * MiB)
        f.write(b"in flight when it crashed")
    os.utime(theirs, ns=(st.st_atime_ns, st.st_mtime_ns))
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
