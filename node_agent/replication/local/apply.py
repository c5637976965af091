"""The secondary's side of replication: apply operations to the local copy (DESIGN §5).

Security first: every path an operation names is re-checked here, whatever the primary
claims. A path is refused (``UnsafePath``) when it is absolute, has an empty, ``.`` or
``..`` component or a NUL byte, or when any of its parent components is a symlink.
Parents are walked component by component from an fd on the root with
``O_PATH|O_NOFOLLOW|O_DIRECTORY`` (openat-style), and the final component is then only
ever used relative to that pinned parent fd and without following symlinks, so a symlink
planted in the copy can never redirect a change outside the root.

Refusing *every* symlinked parent (even one pointing inside the root) is deliberate: the
primary's paths come from FUSE, where the kernel resolves symlinks itself, so a
legitimate operation never names a path through a symlink.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from node_agent.replication import ops
from node_agent.replication.local.early_flush import EarlyFlush
from node_agent.replication.local.syscalls import fallocate, renameat2, syncfs
from node_agent.replication.ops import Op, op_paths

_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Namespace operations need a parent and a name: the root itself can never be their target.
NEEDS_NAME = (
    ops.Write,
    ops.Truncate,
    ops.Fallocate,
    ops.Create,
    ops.Mknod,
    ops.Mkdir,
    ops.Unlink,
    ops.Rmdir,
    ops.Rename,
    ops.Link,
    ops.Symlink,
)


class UnsafePath(ValueError):
    """A path the secondary refuses to touch (never an OS error: a protocol violation)."""


class NotServing(OSError):
    """This applier's module left the secondary role here (it stopped): the op is refused
    and the stream ends -- an orderly end, not a fault of the op or of the copy. Its errno
    (ESHUTDOWN) goes in the NACK (stream/wire.py NACK_LEFT_ROLE), so the primary can tell."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ESHUTDOWN, message)


def check_syntax(rel: str) -> str:
    """Purely lexical checks of a relative path ("" = the root)."""
    if not isinstance(rel, str):
        raise UnsafePath(f"path {rel!r} is not a string")
    if "\0" in rel:
        raise UnsafePath(f"path {rel!r} contains a NUL byte")
    if rel == "":
        return rel
    if rel.startswith("/"):
        raise UnsafePath(f"path {rel!r} is absolute")
    for comp in rel.split("/"):
        if comp in ("", ".", ".."):
            raise UnsafePath(f"path {rel!r} has an empty, '.' or '..' component")
    return rel


class Applier:
    """Applies operations, in the order given, to the copy under ``root``.

    Thread-safe (one lock); OS failures propagate as OSError, refused paths as UnsafePath.
    """

    def __init__(self, root: Path, fd_cache_size: int = 256, early_flush: bool = True) -> None:
        self.root = Path(root)
        # A real (non-O_PATH) fd: it also serves fsync/syncfs of the root.
        self._root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._fds: OrderedDict[str, int] = OrderedDict()  # rel path -> O_WRONLY fd (LRU)
        self._fd_cache_size = fd_cache_size
        self._lock = threading.RLock()
        self._early = EarlyFlush() if early_flush else None  # see early_flush.py

    # -- path checks -------------------------------------------------------------------

    def validate(self, op: Op) -> None:
        """What can be checked of ``op`` without touching the copy (``apply`` calls it):
        its paths' syntax and targets. The parents are checked where they are used: each
        is walked strictly, from the root, when ``apply`` opens it."""
        if not isinstance(op, ops.ALL_OPS):
            raise TypeError(f"not a replication operation: {op!r}")
        for rel in op_paths(op):
            check_syntax(rel)
            if rel == "" and isinstance(op, NEEDS_NAME):
                raise UnsafePath(f"{type(op).__name__} cannot target the root ({rel!r})")
        if isinstance(op, ops.Symlink) and "\0" in op.target:
            raise UnsafePath(f"symlink target {op.target!r} contains a NUL byte")
        if isinstance(op, ops.SetXattr | ops.RemoveXattr) and ("\0" in op.name or not op.name):
            raise UnsafePath(f"bad xattr name {op.name!r}")

    def _open_dir(self, dir_fd: int, comp: str, rel: str) -> int:
        try:
            return os.open(comp, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError as e:
            if e.errno in (errno.ENOTDIR, errno.ELOOP):
                st = os.stat(comp, dir_fd=dir_fd, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    raise UnsafePath(f"path {rel!r}: parent {comp!r} is a symlink") from None
            raise

    def _parent(self, rel: str) -> tuple[int, str]:
        """(fd of the parent directory, final name); the caller closes the fd. ``rel`` is
        checked already (validate); a symlinked parent raises UnsafePath."""
        if rel == "":
            return os.dup(self._root_fd), "."
        *dirs, name = rel.split("/")
        fd = os.dup(self._root_fd)
        try:
            for comp in dirs:
                nfd = self._open_dir(fd, comp, rel)
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd, name

    # -- fd cache ----------------------------------------------------------------------

    def _file_fd(self, rel: str) -> int:
        fd = self._fds.get(rel)
        if fd is not None:
            self._fds.move_to_end(rel)
            return fd
        # No O_CREAT (a Write to a missing file is ENOENT), no O_TRUNC.
        fd = self._open_regular(rel, os.O_WRONLY)
        self._remember(rel, fd)
        return fd

    def _open_regular(self, rel: str, flags: int, allow_dir: bool = False) -> int:
        """Open ``rel`` only if it is a regular file (or a directory when allowed).

        Pinned first with O_PATH|O_NOFOLLOW and checked with fstat, then reopened through
        /proc: opening a FIFO or a device node for writing could block or act on hardware.
        """
        pfd, name = self._parent(rel)
        try:
            pathfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        finally:
            os.close(pfd)
        try:
            mode = os.fstat(pathfd).st_mode
            if stat.S_ISLNK(mode):
                raise OSError(errno.ELOOP, f"{rel!r} is a symlink")
            if stat.S_ISDIR(mode) and not allow_dir:
                raise OSError(errno.EISDIR, f"{rel!r} is a directory")
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise OSError(errno.EINVAL, f"{rel!r} is not a regular file")
            return os.open(f"/proc/self/fd/{pathfd}", flags | os.O_CLOEXEC)
        finally:
            os.close(pathfd)

    def _remember(self, rel: str, fd: int) -> None:
        old = self._fds.pop(rel, None)
        if old is not None and old != fd:
            self._close_cached(old)
        self._fds[rel] = fd
        while len(self._fds) > self._fd_cache_size:
            self._close_cached(self._fds.popitem(last=False)[1])

    def _forget(self, rel: str) -> None:
        """Drop cached fds for ``rel`` and everything below it (its name now means
        something else)."""
        prefix = rel + "/"
        for key in [k for k in self._fds if k == rel or k.startswith(prefix)]:
            self._close_cached(self._fds.pop(key))

    def _close_cached(self, fd: int) -> None:
        if self._early is not None:
            self._early.forget(fd)
        os.close(fd)

    def close(self) -> None:
        with self._lock:
            while self._fds:
                self._close_cached(self._fds.popitem()[1])
            if self._root_fd >= 0:
                os.close(self._root_fd)
                self._root_fd = -1

    def __enter__(self) -> Applier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- apply -------------------------------------------------------------------------

    def apply(self, op: Op) -> None:
        """Validate then apply one operation (a refused path: UnsafePath, nothing done)."""
        with self._lock:
            if self._root_fd < 0:
                raise ValueError("Applier is closed")
            self.validate(op)
            handler = getattr(self, "_op_" + type(op).__name__.lower())
            handler(op)

    def _op_write(self, op: ops.Write) -> None:
        fd = self._file_fd(op.path)
        view = memoryview(op.data)
        offset = op.offset
        while view:  # pwrite may be short (e.g. a signal); finish it or raise
            n = os.pwrite(fd, view, offset)
            view = view[n:]
            offset += n
        if self._early is not None:
            self._early.wrote(fd, op.offset, len(op.data))

    def _op_truncate(self, op: ops.Truncate) -> None:
        os.ftruncate(self._file_fd(op.path), op.size)

    def _op_fallocate(self, op: ops.Fallocate) -> None:
        fd = self._file_fd(op.path)
        if op.mode == 0:
            # Emulated by glibc if the fs lacks fallocate: must not fail where the primary
            # succeeded.
            os.posix_fallocate(fd, op.offset, op.length)
        else:
            fallocate(fd, op.mode, op.offset, op.length)

    @contextmanager
    def _at(self, rel: str) -> Iterator[tuple[int, str]]:
        """The pinned parent fd and final name of ``rel`` for a ``*at`` call."""
        pfd, name = self._parent(rel)
        try:
            yield pfd, name
        finally:
            os.close(pfd)

    def _op_create(self, op: ops.Create) -> None:
        with self._at(op.path) as (pfd, name):
            try:
                fd = os.open(
                    name,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                    op.mode & 0o7777,
                    dir_fd=pfd,
                )
            except FileExistsError:  # tolerated if it is a regular file; never truncated
                fd = self._open_regular(op.path, os.O_WRONLY)
        try:
            if stat.S_IMODE(os.fstat(fd).st_mode) != op.mode & 0o7777:  # umask, or existed
                os.fchmod(fd, op.mode & 0o7777)
        except BaseException:
            os.close(fd)
            raise
        self._remember(op.path, fd)

    @staticmethod
    def _fix_mode(pfd: int, name: str, mode: int) -> None:
        """Set exact permission bits after mkdir/mknod (our umask must not matter)."""
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        if stat.S_IMODE(st.st_mode) != mode & 0o7777 and not stat.S_ISLNK(st.st_mode):
            os.chmod(name, mode & 0o7777, dir_fd=pfd)

    def _op_mknod(self, op: ops.Mknod) -> None:
        with self._at(op.path) as (pfd, name):
            os.mknod(name, op.mode, op.rdev, dir_fd=pfd)
            self._fix_mode(pfd, name, op.mode)

    def _op_mkdir(self, op: ops.Mkdir) -> None:
        with self._at(op.path) as (pfd, name):
            os.mkdir(name, op.mode & 0o7777, dir_fd=pfd)
            self._fix_mode(pfd, name, op.mode)

    def _op_unlink(self, op: ops.Unlink) -> None:
        self._forget(op.path)
        with self._at(op.path) as (pfd, name):
            os.unlink(name, dir_fd=pfd)

    def _op_rmdir(self, op: ops.Rmdir) -> None:
        self._forget(op.path)
        with self._at(op.path) as (pfd, name):
            os.rmdir(name, dir_fd=pfd)

    def _op_rename(self, op: ops.Rename) -> None:
        self._forget(op.src)
        self._forget(op.dst)
        with self._at(op.src) as (sfd, sname), self._at(op.dst) as (dfd, dname):
            if op.flags:
                renameat2(sfd, sname, dfd, dname, op.flags)
            else:
                os.rename(sname, dname, src_dir_fd=sfd, dst_dir_fd=dfd)

    def _op_link(self, op: ops.Link) -> None:
        with self._at(op.src) as (sfd, sname), self._at(op.dst) as (dfd, dname):
            os.link(sname, dname, src_dir_fd=sfd, dst_dir_fd=dfd, follow_symlinks=False)

    def _op_symlink(self, op: ops.Symlink) -> None:
        with self._at(op.path) as (pfd, name):
            os.symlink(op.target, name, dir_fd=pfd)  # the target is data, never resolved

    def _op_chmod(self, op: ops.Chmod) -> None:
        with self._at(op.path) as (pfd, name):
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):  # Linux has no symlink modes
                raise OSError(errno.EOPNOTSUPP, f"chmod of symlink {op.path!r}")
            # Just checked not to be a symlink; pfd pins the parent and nothing else
            # writes the copy.
            os.chmod(name, op.mode & 0o7777, dir_fd=pfd)

    def _op_chown(self, op: ops.Chown) -> None:
        with self._at(op.path) as (pfd, name):
            os.chown(name, op.uid, op.gid, dir_fd=pfd, follow_symlinks=False)

    def _op_utimens(self, op: ops.Utimens) -> None:
        fd = self._fds.get(op.path)
        if fd is not None:  # a file just written (the writeback cache's times at fsync):
            os.utime(fd, ns=(op.atime_ns, op.mtime_ns))  # its open fd, no path walked
            return
        with self._at(op.path) as (pfd, name):
            os.utime(name, ns=(op.atime_ns, op.mtime_ns), dir_fd=pfd, follow_symlinks=False)

    @staticmethod
    def _xattr_target(pfd: int, name: str) -> tuple[str, bool]:
        # The xattr calls take no dir_fd: go through the pinned parent's /proc magic link
        # and never follow the final component (the root itself is "." and is no symlink).
        if name == ".":
            return f"/proc/self/fd/{pfd}", True
        return f"/proc/self/fd/{pfd}/{name}", False

    def _op_setxattr(self, op: ops.SetXattr) -> None:
        with self._at(op.path) as (pfd, name):
            target, follow = self._xattr_target(pfd, name)
            os.setxattr(target, op.name, op.value, op.flags, follow_symlinks=follow)

    def _op_removexattr(self, op: ops.RemoveXattr) -> None:
        with self._at(op.path) as (pfd, name):
            target, follow = self._xattr_target(pfd, name)
            os.removexattr(target, op.name, follow_symlinks=follow)

    def _op_fsync(self, op: ops.Fsync) -> None:
        sync = os.fdatasync if op.datasync else os.fsync
        if op.path == "":
            syncfs(self._root_fd)
        elif op.path in self._fds:
            sync(self._fds[op.path])
        else:
            fd = self._open_regular(op.path, os.O_RDONLY, allow_dir=True)
            try:
                sync(fd)
            finally:
                os.close(fd)
