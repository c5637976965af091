"""Real FUSE mounts: workloads through the replicating passthrough, secondary compared.

The replicator is a real component chain (every op applied by an Applier to a second
directory, "the secondary copy"), not a mock. After each workload the backing directory
and the secondary copy must be identical.
"""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from node_agent.replication import ops
from node_agent.replication.fuse.mount import Mount, MountError
from node_agent.replication.local.apply import Applier
from node_agent.replication.local.syscalls import fallocate, renameat2
from tests.conftest import require_binary, require_fuse
from tests.integration.local_replicator import LocalReplicator

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Env:
    mnt: Path
    backing: Path
    secondary: Path
    rep: LocalReplicator
    mount: Mount


@pytest.fixture(params=[True, False], ids=["writeback", "nowriteback"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    require_fuse()
    backing, secondary, mnt = tmp_path / "backing", tmp_path / "secondary", tmp_path / "mnt"
    for d in (backing, secondary, mnt):
        d.mkdir()
    applier = Applier(secondary)
    rep = LocalReplicator(applier)
    mount = Mount(backing, mnt, rep, writeback_cache=request.param)
    mount.start()
    yield Env(mnt, backing, secondary, rep, mount)
    mount.stop()
    applier.close()
    assert not os.path.ismount(mnt)
    assert os.listdir(mnt) == []


def snapshot(root: Path, mtimes: bool = True) -> dict[str, tuple]:
    """Everything replication must reproduce; directory mtimes excluded (each side's
    own namespace changes move them)."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames] if dirpath == str(root) else dirnames + filenames:
            p = os.path.normpath(os.path.join(dirpath, name))
            st = os.lstat(p)
            xattrs = sorted(
                (n, os.getxattr(p, n, follow_symlinks=False))
                for n in os.listxattr(p, follow_symlinks=False)
            )
            entry: tuple = (st.st_mode, st.st_uid, st.st_gid, st.st_nlink, tuple(xattrs))
            if stat.S_ISREG(st.st_mode):
                entry += (st.st_size, hashlib.sha256(Path(p).read_bytes()).hexdigest())
            elif stat.S_ISLNK(st.st_mode):
                entry += (os.readlink(p),)
            if mtimes and not stat.S_ISDIR(st.st_mode):
                entry += (st.st_mtime_ns,)
            out[os.path.relpath(p, root)] = entry
    return out


def assert_replicated(e: Env, mtimes: bool = False, skip: tuple[str, ...] = ()) -> None:
    deadline = time.monotonic() + 5  # RELEASE, which removes .fuse_hidden*, is asynchronous
    while any(".fuse_hidden" in p.name for p in e.backing.rglob("*")):
        assert time.monotonic() < deadline, "a .fuse_hidden file outlived its last close"
        time.sleep(0.01)
    a = {k: v for k, v in snapshot(e.backing, mtimes).items() if k not in skip}
    assert a == {k: v for k, v in snapshot(e.secondary, mtimes).items() if k not in skip}


def test_python_workload(env: Env) -> None:
    m = env.mnt
    (m / "d/sub").mkdir(parents=True)
    (m / "d/sub/f.txt").write_bytes(b"hello" * 1000)
    with open(m / "d/sub/f.txt", "r+b") as f:
        f.seek(100)
        f.write(b"PATCH")
        f.seek(1 << 20)
        f.write(b"tail")  # sparse extension
    for _ in range(3):
        with open(m / "log", "a") as f:  # O_APPEND: data must land at the end on both sides
            f.write("line\n")
    (m / "old").write_bytes(b"old")
    os.rename(m / "old", m / "d/new")
    (m / "victim").write_bytes(b"v")
    os.rename(m / "d/new", m / "victim")  # over an existing file
    os.rename(m / "d/sub", m / "moved")  # a directory
    os.symlink("moved/f.txt", m / "rel-link")
    os.symlink("/etc/passwd", m / "abs-link")
    os.link(m / "moved/f.txt", m / "hard")
    os.chmod(m / "victim", 0o4640)
    os.chown(m / "victim", 1234, 4321)
    os.lchown(m / "abs-link", 55, 66)
    os.utime(m / "victim", ns=(1_500_000_000_123456789, 1_600_000_000_987654321))
    os.utime(m / "rel-link", ns=(1_000_000_000, 2_000_000_000), follow_symlinks=False)
    os.setxattr(m / "victim", "user.k", b"v\0x")
    os.setxattr(m / "moved", "user.dir", b"d")
    os.setxattr(m / "hard", "user.gone", b"g")
    os.removexattr(m / "hard", "user.gone")
    os.truncate(m / "hard", 3000)
    with open(m / "big", "wb") as f:
        os.posix_fallocate(f.fileno(), 0, 3 << 20)
        fallocate(f.fileno(), 3, 4096, 65536)  # KEEP_SIZE | PUNCH_HOLE
    (m / "trunc").write_bytes(b"x" * 5000)
    (m / "trunc").write_bytes(b"short")  # open(O_TRUNC) of a non-empty file
    os.mkfifo(m / "fifo", 0o600)
    (m / "rmme").mkdir()
    os.rmdir(m / "rmme")
    os.unlink(m / "abs-link")
    (m / "a").write_bytes(b"A")
    (m / "b").write_bytes(b"B")
    renameat2(-100, str(m / "a"), -100, str(m / "b"), 2)  # RENAME_EXCHANGE
    with pytest.raises(FileExistsError):
        renameat2(-100, str(m / "a"), -100, str(m / "b"), 1)  # RENAME_NOREPLACE
    with open(m / "open-unlinked", "wb") as f:  # unlinked while open: .fuse_hidden*
        f.write(b"1")
        os.unlink(m / "open-unlinked")
        f.write(b"2")
    assert (m / "log").read_text() == "line\n" * 3
    assert (m / "b").read_bytes() == b"A"
    assert (env.secondary / "moved/f.txt").read_bytes()[100:105] == b"PATCH"
    assert_replicated(env)
    snap = snapshot(env.secondary)
    assert snap["victim"][1:3] == (1234, 4321) and snap["victim"][-1] == 1_600_000_000_987654321
    assert snap["rel-link"][-1] == 2_000_000_000 and snap["hard"][3] == 2


def test_dd_o_direct(env: Env) -> None:
    dd = require_binary("dd")
    img = env.mnt / "disk.img"
    for args in (
        "if=/dev/urandom bs=64k count=64 oflag=direct conv=fsync status=none",
        "if=/dev/zero bs=4k count=5 seek=7 oflag=direct conv=notrunc,fsync status=none",
    ):
        subprocess.run([dd, f"of={img}", *args.split()], check=True)
    assert img.stat().st_size == 64 * 65536
    assert any(isinstance(o, ops.Fsync) and o.path == "disk.img" for o in env.rep.log)
    assert_replicated(env)


def test_cp_a_tree(env: Env, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "etc/deep/er").mkdir(parents=True)
    (src / "etc/conf").write_text("a=1\n")
    (src / "etc/deep/er/blob").write_bytes(os.urandom(300_000))
    (src / "empty").touch()
    (src / "etc/deep").chmod(0o700)
    (src / "etc/conf").chmod(0o600)
    os.symlink("etc/conf", src / "link")
    os.link(src / "etc/conf", src / "hardlink")
    os.setxattr(src / "etc/conf", "user.tag", b"t")
    os.utime(src / "empty", ns=(10**18, 10**18))
    subprocess.run([require_binary("cp"), "-a", str(src), str(env.mnt / "copy")], check=True)
    assert snapshot(src) == snapshot(env.mnt / "copy")  # cp -a through us is faithful
    assert_replicated(env, mtimes=True)


SQLITE_APP = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute(f"PRAGMA journal_mode={sys.argv[2]}")
db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
for i in range(20):
    with db:
        db.executemany("INSERT INTO t (v) VALUES (?)", [(f"r{i}-{j}" * 20,) for j in range(50)])
db.execute("DELETE FROM t WHERE k % 3 = 0")
db.commit()
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
db.close()
"""


def test_sqlite(env: Env, tmp_path: Path) -> None:
    # The application is another process, as in production: an in-process client that
    # holds the GIL inside a C call doing I/O on the mount (sqlite3's close) deadlocks
    # against our own Python FUSE handlers.
    for mode in ("DELETE", "WAL"):
        db = env.mnt / f"{mode}.db"
        subprocess.run([sys.executable, "-c", SQLITE_APP, str(db), mode], check=True, timeout=120)
        assert_replicated(env)
        copy = tmp_path / f"{mode}-copy.db"  # never open the secondary itself
        shutil.copy(env.secondary / f"{mode}.db", copy)
        check = sqlite3.connect(copy)
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert check.execute("SELECT count(*) FROM t").fetchone() == (667,)
        check.close()


def test_concurrent_writers(env: Env) -> None:
    """4 threads, disjoint O_DIRECT ranges of one file plus one file each."""
    fd = os.open(env.mnt / "shared", os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)

    def worker(n: int) -> None:
        buf = mmap.mmap(-1, 65536)  # page-aligned for O_DIRECT
        own = env.mnt / f"own{n}"
        for i in range(40):
            buf[:] = bytes([n * 40 + i & 0xFF]) * 65536
            os.pwrite(fd, buf, (i * 4 + n) * 65536)
            with open(own, "ab") as f:
                f.write(buf[:1000])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    os.fsync(fd)
    os.close(fd)
    assert_replicated(env)


def test_replicator_oserror_reaches_the_app(env: Env) -> None:
    def fail(op: ops.Op) -> OSError | None:
        bad = isinstance(op, ops.Write | ops.Fsync | ops.Mkdir | ops.Create)
        return OSError(errno.EIO, "peer") if bad and "fail" in ops.op_paths(op)[0] else None

    (env.mnt / "fail.bin").touch()
    env.rep.fail = fail
    with pytest.raises(OSError) as ei:
        (env.mnt / "fail-create").touch()
    assert ei.value.errno == errno.EIO
    fds = os.listdir("/proc/self/fd")
    leaked = [f for f in fds if "fail-create" in os.path.realpath(f"/proc/self/fd/{f}")]
    assert leaked == []  # the app got no handle: our backing fd must be closed
    buf = mmap.mmap(-1, 4096)  # page-aligned for O_DIRECT: the write itself is synchronous
    fd = os.open(env.mnt / "fail.bin", os.O_WRONLY | os.O_DIRECT)
    with pytest.raises(OSError) as ei:
        os.write(fd, buf)
    os.close(fd)
    assert ei.value.errno == errno.EIO
    with pytest.raises(OSError) as ei:
        os.mkdir(env.mnt / "faildir")
    assert ei.value.errno == errno.EIO
    env.rep.fail = lambda op: None
    (env.mnt / "after").write_bytes(b"still alive")  # the mount survived
    assert (env.secondary / "after").read_bytes() == b"still alive"
    assert_replicated(env, skip=(".", "fail-create", "fail.bin", "faildir"))  # diverged


def test_handler_exception_does_not_kill_the_mount(env: Env) -> None:
    env.rep.fail = lambda op: RuntimeError("bug") if isinstance(op, ops.Mkdir) else None
    with pytest.raises(OSError) as ei:
        os.mkdir(env.mnt / "boom")
    assert ei.value.errno == errno.EIO
    env.rep.fail = lambda op: None
    os.mkdir(env.mnt / "fine")
    assert (env.secondary / "fine").is_dir()


def test_a_fenced_replicator_changes_nothing(env: Env) -> None:
    (env.mnt / "f").write_bytes(b"before")
    fd = os.open(env.mnt / "f", os.O_WRONLY | os.O_SYNC)
    env.rep.fenced = True
    for change in (
        lambda: os.mkdir(env.mnt / "d"),
        lambda: (env.mnt / "f").rename(env.mnt / "g"),
        lambda: os.pwrite(fd, b"after!", 0),
        lambda: os.fsync(fd),
    ):
        with pytest.raises(OSError) as ei:
            change()
        assert ei.value.errno == errno.EIO
    os.close(fd)
    assert sorted(os.listdir(env.backing)) == ["f"]  # refused before the local apply
    assert (env.backing / "f").read_bytes() == b"before"


def test_non_root_caller_owns_its_files(env: Env) -> None:
    os.chmod(env.mnt, 0o777)
    sh = "umask 0; echo x > f; mkdir -m 777 d; ln -s f l; mkfifo -m 660 p"
    subprocess.run(["/bin/sh", "-c", sh], cwd=env.mnt, user=4242, group=4343, check=True)
    snap = snapshot(env.backing)
    assert snap["f"][:3] == (stat.S_IFREG | 0o666, 4242, 4343)  # not our umask, not root
    assert snap["d"][:3] == (stat.S_IFDIR | 0o777, 4242, 4343)
    assert snap["l"][1:3] == (4242, 4343) and snap["p"][1:3] == (4242, 4343)
    assert_replicated(env)


def test_pipelined_waits_keep_the_order(tmp_path: Path) -> None:
    # As with the real stream: ops are applied by another thread, in the order they were
    # submitted, and each wait blocks until its op was applied.
    require_fuse()
    (tmp_path / "b").mkdir()
    (tmp_path / "s").mkdir()
    rep = LocalReplicator(Applier(tmp_path / "s"), threaded=True)
    with Mount(tmp_path / "b", tmp_path / "m", rep) as mount:
        e = Env(tmp_path / "m", tmp_path / "b", tmp_path / "s", rep, mount)
        test_concurrent_writers(e)
        test_sqlite(e, tmp_path)


def test_mount_lifecycle(tmp_path: Path) -> None:
    require_fuse()
    b, s, m = tmp_path / "b", tmp_path / "s", tmp_path / "m"
    b.mkdir()
    s.mkdir()
    rep = LocalReplicator(Applier(s))
    mounts = [Mount(b, m, rep)] + [Mount(b, tmp_path / f"m{i}", rep) for i in range(2)]
    for mount in mounts:  # several mounts in one process (one per module)
        mount.start()
    status = Path("/proc/self/status").read_text().splitlines()
    caught = next(ln for ln in status if ln.startswith("SigCgt:"))
    assert not int(caught.split()[1], 16) >> (signal.SIGTERM - 1) & 1  # libfuse's undone
    (m / "x").write_bytes(b"1")
    assert (tmp_path / "m1/x").read_bytes() == b"1" and (s / "x").read_bytes() == b"1"
    with pytest.raises(MountError, match="already a mount point"):
        Mount(b, m, rep).start()
    busy = open(m / "busy", "w")  # noqa: SIM115
    mounts[0].stop(timeout=2)  # busy: its users are cut off (the connection is aborted)
    assert not mounts[0].mounted
    with pytest.raises(OSError) as ei:  # a lookup by path meets the dead mount...
        (m / "late").write_bytes(b"unreplicated")
    assert ei.value.errno == errno.ENOTCONN
    with pytest.raises(OSError) as ei:
        busy.close()  # a straggler can write nothing more once stop() returned
    assert ei.value.errno == errno.ENOTCONN
    for mount in mounts:
        mount.stop()
        mount.stop()  # twice is fine
    again = Mount(b, m, rep)
    again.start()  # clears the dead mount it finds
    assert sorted(os.listdir(m)) == ["busy", "x"]
    again.stop()
    assert not any(os.path.ismount(mt.mountpoint) for mt in mounts)
    assert not (m / "late").exists()  # ...never the bare directory underneath
    (m / "stray").touch()
    with pytest.raises(MountError, match="not empty"):
        Mount(b, m, rep).start()
    with pytest.raises(MountError, match="contain"):
        Mount(b, b / "inner", rep).start()


def test_stale_mount_is_cleared(tmp_path: Path) -> None:
    require_fuse()
    b, m = tmp_path / "b", tmp_path / "m"
    b.mkdir()
    code = (
        "import sys, time; from pathlib import Path; "
        "from node_agent.replication.fuse.mount import Mount\n"
        "from tests.integration.local_replicator import LocalReplicator\n"
        f"Mount(Path({str(b)!r}), Path({str(m)!r}), LocalReplicator()).start(); "
        "print('up', flush=True); "
        "time.sleep(60)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
    finally:
        proc.kill()  # the FUSE server dies: the mount is left dead
        proc.wait()
    with pytest.raises(OSError) as ei:
        os.listdir(m)
    assert ei.value.errno == errno.ENOTCONN
    (b / "kept").write_bytes(b"k")
    with Mount(b, m, LocalReplicator(Applier(tmp_path))):
        assert (m / "kept").read_bytes() == b"k"
    assert not os.path.ismount(m)


def test_a_libfuse_thread_keeps_its_python_thread_state_between_requests(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libfuse's worker threads are not Python's: without mount._keep_thread_state each
    request got a fresh Python thread state (a frame stack mapped and unmapped per
    request), and so a threading.local set in one request was gone in the next."""
    from node_agent.replication.fuse.fusefs import ReplicatingFS

    local = threading.local()
    seen: list[tuple[int, bool]] = []  # (native thread, its local survived)
    original = ReplicatingFS.getxattr

    def getxattr(self, path, name, position=0):  # noqa: ANN001, ANN202
        seen.append((threading.get_native_id(), getattr(local, "mark", False)))
        local.mark = True
        return original(self, path, name, position)

    monkeypatch.setattr(ReplicatingFS, "getxattr", getxattr)
    (env.mnt / "f").write_bytes(b"x")
    for _ in range(40):
        with pytest.raises(OSError):
            os.getxattr(env.mnt / "f", "user.none")
    first: set[int] = set()
    later = []
    for tid, survived in seen:
        if tid in first:
            later.append(survived)
        first.add(tid)
    assert later and all(later), f"{later.count(False)} of {len(later)} requests lost it"
