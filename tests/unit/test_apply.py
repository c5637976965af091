"""The secondary's Applier: every operation on a real temp directory, and path safety."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from node_agent.replication import ops
from node_agent.replication.local.apply import Applier, UnsafePath, check_syntax

FALLOC_FL_KEEP_SIZE = 1
FALLOC_FL_PUNCH_HOLE = 2
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    r.mkdir()
    return r


@pytest.fixture
def ap(root: Path) -> Iterator[Applier]:
    a = Applier(root)
    yield a
    a.close()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    o = tmp_path / "outside"
    o.mkdir()
    (o / "x").write_bytes(b"precious")
    (o / "x").chmod(0o644)
    return o


def _snapshot(d: Path) -> dict[str, tuple[int, bytes]]:
    return {
        p.name: (p.lstat().st_mode, p.read_bytes() if p.is_file() else b"")
        for p in sorted(d.iterdir())
    }


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_create_write_truncate(ap: Applier, root: Path) -> None:
    old = os.umask(0o077)  # the Applier's own umask must not change the replicated mode
    try:
        ap.apply(ops.Create("f", stat.S_IFREG | 0o664))
    finally:
        os.umask(old)
    assert stat.S_IMODE((root / "f").stat().st_mode) == 0o664
    ap.apply(ops.Write("f", 0, b"hello world"))
    ap.apply(ops.Write("f", 6, b"WORLD"))
    ap.apply(ops.Write("f", 20, b"!"))  # past EOF: a hole
    assert (root / "f").read_bytes() == b"hello WORLD" + b"\0" * 9 + b"!"
    ap.apply(ops.Truncate("f", 5))
    assert (root / "f").read_bytes() == b"hello"
    ap.apply(ops.Truncate("f", 8))
    assert (root / "f").read_bytes() == b"hello\0\0\0"


def test_create_existing_keeps_content_and_sets_mode(ap: Applier, root: Path) -> None:
    (root / "f").write_bytes(b"keep")
    ap.apply(ops.Create("f", stat.S_IFREG | 0o600))
    assert (root / "f").read_bytes() == b"keep"
    assert stat.S_IMODE((root / "f").stat().st_mode) == 0o600


def test_write_to_missing_file_is_enoent(ap: Applier, root: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ap.apply(ops.Write("nope", 0, b"x"))
    assert not (root / "nope").exists()


def test_fallocate(ap: Applier, root: Path) -> None:
    ap.apply(ops.Create("f", stat.S_IFREG | 0o644))
    ap.apply(ops.Fallocate("f", 0, 0, 1 << 20))
    assert (root / "f").stat().st_size == 1 << 20
    ap.apply(ops.Write("f", 0, b"\xff" * 65536))
    ap.apply(ops.Fallocate("f", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 8192))
    data = (root / "f").read_bytes()
    assert len(data) == 1 << 20
    assert data[:4096] == b"\xff" * 4096
    assert data[4096:12288] == b"\0" * 8192
    assert data[12288:65536] == b"\xff" * (65536 - 12288)


def test_mknod_mkdir_exact_modes(ap: Applier, root: Path) -> None:
    old = os.umask(0o077)
    try:
        ap.apply(ops.Mknod("fifo", stat.S_IFIFO | 0o640, 0))
        ap.apply(ops.Mkdir("d", 0o2775))
        ap.apply(ops.Mkdir("d/sub", 0o1777))
    finally:
        os.umask(old)
    st = (root / "fifo").lstat()
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640
    assert stat.S_IMODE((root / "d").stat().st_mode) == 0o2775
    assert stat.S_IMODE((root / "d/sub").stat().st_mode) == 0o1777


def test_unlink_rmdir(ap: Applier, root: Path) -> None:
    ap.apply(ops.Mkdir("d", 0o755))
    ap.apply(ops.Create("d/f", stat.S_IFREG | 0o644))
    ap.apply(ops.Write("d/f", 0, b"x"))
    with pytest.raises(OSError) as ei:
        ap.apply(ops.Rmdir("d"))
    assert ei.value.errno == errno.ENOTEMPTY
    ap.apply(ops.Unlink("d/f"))
    ap.apply(ops.Rmdir("d"))
    assert list(root.iterdir()) == []


def test_rename_invalidates_cached_fds(ap: Applier, root: Path) -> None:
    ap.apply(ops.Mkdir("d", 0o755))
    ap.apply(ops.Create("d/f", stat.S_IFREG | 0o644))
    ap.apply(ops.Write("d/f", 0, b"one"))  # fd for "d/f" now cached
    ap.apply(ops.Rename("d", "e"))
    ap.apply(ops.Write("e/f", 3, b"two"))
    with pytest.raises(FileNotFoundError):
        ap.apply(ops.Write("d/f", 0, b"stale"))
    ap.apply(ops.Mkdir("d", 0o755))
    ap.apply(ops.Create("d/f", stat.S_IFREG | 0o644))
    ap.apply(ops.Write("d/f", 0, b"new"))
    assert (root / "e/f").read_bytes() == b"onetwo"
    assert (root / "d/f").read_bytes() == b"new"
    # a rename over an existing name: later writes go to the moved file
    ap.apply(ops.Rename("e/f", "d/f"))
    ap.apply(ops.Write("d/f", 0, b"ONE"))
    assert (root / "d/f").read_bytes() == b"ONEtwo"


def test_rename_flags(ap: Applier, root: Path) -> None:
    (root / "a").write_bytes(b"A")
    (root / "b").write_bytes(b"B")
    with pytest.raises(FileExistsError):
        ap.apply(ops.Rename("a", "b", RENAME_NOREPLACE))
    ap.apply(ops.Rename("a", "b", RENAME_EXCHANGE))
    assert (root / "a").read_bytes() == b"B" and (root / "b").read_bytes() == b"A"
    ap.apply(ops.Rename("a", "c", RENAME_NOREPLACE))
    assert sorted(p.name for p in root.iterdir()) == ["b", "c"]


def test_link_and_symlink(ap: Applier, root: Path) -> None:
    (root / "f").write_bytes(b"data")
    ap.apply(ops.Link("f", "g"))
    assert (root / "f").stat().st_ino == (root / "g").stat().st_ino
    assert (root / "f").stat().st_nlink == 2
    for i, target in enumerate(["f", "../../etc/passwd", "/etc/shadow", "dangling"]):
        ap.apply(ops.Symlink(target, f"l{i}"))  # stored verbatim, never resolved
        assert os.readlink(root / f"l{i}") == target
    ap.apply(ops.Link("l2", "l2b"))  # a hard link to the symlink itself
    assert os.readlink(root / "l2b") == "/etc/shadow"


def test_chmod_chown_utimens(ap: Applier, root: Path, outside: Path) -> None:
    (root / "f").write_bytes(b"x")
    ap.apply(ops.Chmod("f", 0o4751))
    assert stat.S_IMODE((root / "f").stat().st_mode) == 0o4751
    ap.apply(ops.Chown("f", 1234, 5678))
    st = (root / "f").stat()
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    ap.apply(ops.Chown("f", -1, 42))
    st = (root / "f").stat()
    assert (st.st_uid, st.st_gid) == (1234, 42)
    ap.apply(ops.Utimens("f", 1_000_000_123, 2_000_000_456))
    st = (root / "f").stat()
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_123, 2_000_000_456)
    # on a symlink: the link itself, never its target
    os.symlink(outside / "x", root / "l")
    before = os.stat(outside / "x")
    with pytest.raises(OSError) as ei:
        ap.apply(ops.Chmod("l", 0o777))
    assert ei.value.errno == errno.EOPNOTSUPP
    ap.apply(ops.Chown("l", 4321, 8765))
    ap.apply(ops.Utimens("l", 5_000_000_000, 6_000_000_000))
    lst = os.lstat(root / "l")
    assert (lst.st_uid, lst.st_mtime_ns) == (4321, 6_000_000_000)
    after = os.stat(outside / "x")
    assert (after.st_mode, after.st_uid, after.st_mtime_ns) == (
        before.st_mode,
        before.st_uid,
        before.st_mtime_ns,
    )


def test_root_metadata(ap: Applier, root: Path) -> None:
    ap.apply(ops.Chmod("", 0o750))
    assert stat.S_IMODE(root.stat().st_mode) == 0o750
    ap.apply(ops.SetXattr("", "user.root", b"r"))
    assert os.getxattr(root, "user.root") == b"r"
    ap.apply(ops.Utimens("", 7_000_000_000, 8_000_000_000))
    assert root.stat().st_mtime_ns == 8_000_000_000
    ap.apply(ops.Fsync(""))


def test_xattrs(ap: Applier, root: Path) -> None:
    (root / "f").write_bytes(b"x")
    ap.apply(ops.SetXattr("f", "user.a", b"\0binary\xff"))
    assert os.getxattr(root / "f", "user.a") == b"\0binary\xff"
    with pytest.raises(FileExistsError):
        ap.apply(ops.SetXattr("f", "user.a", b"v", os.XATTR_CREATE))
    ap.apply(ops.SetXattr("f", "user.a", b"v2", os.XATTR_REPLACE))
    assert os.getxattr(root / "f", "user.a") == b"v2"
    ap.apply(ops.RemoveXattr("f", "user.a"))
    assert os.listxattr(root / "f") == []
    with pytest.raises(OSError) as ei:
        ap.apply(ops.RemoveXattr("f", "user.a"))
    assert ei.value.errno == errno.ENODATA


def test_fsync(ap: Applier, root: Path) -> None:
    ap.apply(ops.Mkdir("d", 0o755))
    ap.apply(ops.Create("d/f", stat.S_IFREG | 0o644))
    ap.apply(ops.Write("d/f", 0, b"x"))
    ap.apply(ops.Fsync("d/f"))  # the cached fd
    ap.apply(ops.Fsync("d/f", datasync=True))
    ap.apply(ops.Fsync("d"))  # a directory
    ap.apply(ops.Fsync(""))  # syncfs
    (root / "plain").write_bytes(b"y")
    ap.apply(ops.Fsync("plain"))  # not cached


def test_data_ops_refuse_special_files(ap: Applier, root: Path, outside: Path) -> None:
    os.mkfifo(root / "fifo")  # opening it for writing would block forever
    os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.symlink(outside / "x", root / "link")
    for name, code in (("fifo", errno.EINVAL), ("null", errno.EINVAL), ("link", errno.ELOOP)):
        for op in (ops.Write(name, 0, b"evil"), ops.Truncate(name, 0)):
            with pytest.raises(OSError) as ei:
                ap.apply(op)
            assert ei.value.errno == code, (name, op)
    (root / "d").mkdir()
    with pytest.raises(IsADirectoryError):
        ap.apply(ops.Write("d", 0, b"x"))
    # Create through a (dangling or not) symlink must not create/alter its target
    os.symlink(outside / "new", root / "dangling")
    for name in ("link", "dangling"):
        with pytest.raises(OSError):
            ap.apply(ops.Create(name, stat.S_IFREG | 0o666))
    assert (outside / "x").read_bytes() == b"precious"
    assert not (outside / "new").exists()


BAD_PATHS = ["/etc/passwd", "..", "../x", "a/../../x", "a/./b", ".", "a//b", "a/", "/", "x\0y"]


@pytest.mark.parametrize("bad", BAD_PATHS)
def test_unsafe_syntax(ap: Applier, root: Path, bad: str) -> None:
    (root / "a").mkdir()
    with pytest.raises(UnsafePath) as ei:
        ap.apply(ops.Write(bad, 0, b"x"))
    assert repr(bad) in str(ei.value)
    for op in (ops.Create(bad, 0o100644), ops.Rename("a", bad), ops.Link(bad, "z")):
        with pytest.raises(UnsafePath):
            ap.apply(op)
    with pytest.raises(UnsafePath):
        check_syntax(bad)


def test_root_is_no_target_for_namespace_ops(ap: Applier, root: Path) -> None:
    for op in (ops.Unlink(""), ops.Rmdir(""), ops.Write("", 0, b""), ops.Rename("", "x")):
        with pytest.raises(UnsafePath):
            ap.apply(op)
    assert root.is_dir()


def _escape_ops(prefix: str) -> list[ops.Op]:
    p = f"{prefix}/x"
    return [
        ops.Write(p, 0, b"PWNED"),
        ops.Truncate(p, 0),
        ops.Fallocate(p, 0, 0, 4096),
        ops.Create(f"{prefix}/new", 0o100644),
        ops.Mknod(f"{prefix}/node", stat.S_IFIFO | 0o644, 0),
        ops.Mkdir(f"{prefix}/dir", 0o755),
        ops.Unlink(p),
        ops.Rename("inside", p),
        ops.Rename(p, "stolen"),
        ops.Link("inside", f"{prefix}/hard"),
        ops.Symlink("/", f"{prefix}/sym"),
        ops.Chmod(p, 0o777),
        ops.Chown(p, 1, 1),
        ops.Utimens(p, 0, 0),
        ops.SetXattr(p, "user.pwned", b"1"),
        ops.RemoveXattr(p, "user.keep"),
        ops.Fsync(p),
    ]


@pytest.mark.parametrize("prefix", ["evil", "a/evil", "a/evil/deeper", "inlink"])
def test_symlinked_parent_is_refused(ap: Applier, root: Path, outside: Path, prefix: str) -> None:
    (root / "a").mkdir()
    (root / "inside").write_bytes(b"in")
    (root / "sub").mkdir()
    os.symlink(outside, root / "evil")
    os.symlink(outside, root / "a/evil")
    os.symlink("sub", root / "inlink")  # even pointing inside: FUSE never sends such paths
    os.setxattr(outside / "x", "user.keep", b"k")
    before = _snapshot(outside)
    for op in _escape_ops(prefix):
        ap.validate(op)  # the syntax is fine: the parent is checked when it is used
        with pytest.raises(UnsafePath) as ei:
            ap.apply(op)
        assert "symlink" in str(ei.value)
    assert _snapshot(outside) == before
    assert os.getxattr(outside / "x", "user.keep") == b"k"
    assert (root / "inside").read_bytes() == b"in"
    assert not (root / "stolen").exists()


def test_validate_has_no_side_effects(ap: Applier, root: Path) -> None:
    batch: list[ops.Op] = [
        ops.Mkdir("n", 0o755),
        ops.Create("n/f", 0o100644),  # parent does not exist yet: accepted
        ops.Write("n/f", 0, b"batch"),
        ops.Symlink("/etc", "n/l"),
    ]
    for op in batch:
        ap.validate(op)
    assert list(root.iterdir()) == []
    with pytest.raises(UnsafePath):
        ap.validate(ops.Write("n/../../x", 0, b""))
    with pytest.raises(TypeError):
        ap.validate("not an op")  # type: ignore[arg-type]
    for op in batch:
        ap.apply(op)
    assert (root / "n/f").read_bytes() == b"batch"
    # ...but a symlink the batch itself planted is caught when the op is applied
    with pytest.raises(UnsafePath):
        ap.apply(ops.Create("n/l/passwd", 0o100644))


def test_fd_cache_is_bounded_and_closed(root: Path) -> None:
    base = _open_fds()
    a = Applier(root, fd_cache_size=3)
    for i in range(10):
        a.apply(ops.Create(f"f{i}", 0o100644))
        a.apply(ops.Write(f"f{i}", 0, b"%d" % i))
    assert _open_fds() <= base + 1 + 3  # the root fd + the cache
    for i in range(10):
        a.apply(ops.Write(f"f{i}", 1, b"!"))
        assert (root / f"f{i}").read_bytes() == b"%d!" % i
    a.close()
    a.close()  # idempotent
    assert _open_fds() == base
    with pytest.raises(ValueError):
        a.apply(ops.Fsync(""))


def test_times_of_a_file_just_written_go_through_its_open_fd_and_follow_renames(
    ap: Applier, root: Path
) -> None:
    """The writeback cache sends a file's times right after its data: the applier uses the
    fd the Write opened (no path walk), and a rename never lets it reach the old file."""
    ap.apply(ops.Create("d", stat.S_IFREG | 0o644))  # (a file named like a dir: any name)
    ap.apply(ops.Write("d", 0, b"data"))
    ap.apply(ops.Utimens("d", 1_000_000_000, 2_000_000_000))
    assert (root / "d").stat().st_mtime_ns == 2_000_000_000
    ap.apply(ops.Rename("d", "old"))  # the cached fd is for the file now named "old"
    ap.apply(ops.Create("d", stat.S_IFREG | 0o644))
    ap.apply(ops.Utimens("d", 3_000_000_000, 4_000_000_000))
    assert (root / "d").stat().st_mtime_ns == 4_000_000_000
    assert (root / "old").stat().st_mtime_ns == 2_000_000_000
