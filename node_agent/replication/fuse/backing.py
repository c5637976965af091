"""The local copy under a mount, as the FUSE handlers see it (used by fusefs, data and
namespace): paths, the files the kernel holds open, the owner and modes of new nodes, and
the early writeback of what was written (local/early_flush.py)."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from pathlib import Path

import mfusepy
from mfusepy import FuseOSError

from node_agent.replication import ops
from node_agent.replication.local.early_flush import EarlyFlush

# O_DIRECT: the backing copy is a plain page-cached file (QEMU cache=none uses it and the
# backing fs may reject it). O_APPEND: we pwrite at the offset the kernel chose, and
# pwrite on an O_APPEND fd ignores the offset. The rest is done explicitly by create/open.
_STRIP = os.O_DIRECT | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_TRUNC | os.O_NOCTTY


class Backing:
    def __init__(self, root: Path, writeback_cache: bool, early_flush: bool) -> None:
        self.root = os.path.realpath(root)
        self.writeback_cache = writeback_cache
        self._fh_paths: dict[int, str] = {}  # open backing fd -> relative path
        self._fh_lock = threading.Lock()
        self._euid, self._egid = os.geteuid(), os.getegid()
        self._early = EarlyFlush() if early_flush else None

    # -- paths -------------------------------------------------------------------------

    def full(self, path: str) -> str:
        # libfuse hands normalized absolute paths of its own namespace ("/", "/a/b").
        return self.root + path if path != "/" else self.root

    @staticmethod
    def rel(path: str) -> str:
        return path.lstrip("/")

    # -- open files --------------------------------------------------------------------

    def open_flags(self, flags: int) -> int:
        flags = (flags & ~_STRIP) | os.O_CLOEXEC | os.O_NOFOLLOW
        if self.writeback_cache and flags & os.O_ACCMODE == os.O_WRONLY:
            # The kernel reads pages back for partial-page writes into its cache.
            flags = (flags & ~os.O_ACCMODE) | os.O_RDWR
        return flags

    def track(self, fd: int, rel: str) -> int:
        with self._fh_lock:
            self._fh_paths[fd] = rel
        return fd

    def path_of(self, path: str | None, fh: int) -> str:
        # libfuse's path is authoritative: its tree lock keeps it valid during the call.
        if path is not None:
            return self.rel(path)
        with self._fh_lock:
            rel = self._fh_paths.get(fh)
        if rel is None:
            raise FuseOSError(errno.EIO)
        return rel

    def renamed(self, src: str, dst: str, exchange: bool) -> None:
        def move(p: str, a: str, b: str) -> str | None:
            if p == a or p.startswith(a + "/"):
                return b + p[len(a) :]
            return None

        with self._fh_lock:
            for fd, p in self._fh_paths.items():
                new = move(p, src, dst) or (move(p, dst, src) if exchange else None)
                if new is not None:
                    self._fh_paths[fd] = new

    def wrote(self, fh: int, offset: int, n: int) -> None:
        if self._early is not None:
            self._early.wrote(fh, offset, n)

    def release(self, fh: int) -> None:
        with self._fh_lock:
            self._fh_paths.pop(fh, None)
        self._close(fh)

    def close_all(self) -> None:
        """Close backing fds the kernel never released (aborted connection)."""
        with self._fh_lock:
            fds, self._fh_paths = list(self._fh_paths), {}
        for fd in fds:
            with contextlib.suppress(OSError):
                self._close(fd)

    def _close(self, fd: int) -> None:
        if self._early is not None:
            self._early.forget(fd)
        os.close(fd)

    # -- new nodes ---------------------------------------------------------------------

    def owner_ops(self, full: str, rel: str) -> list[ops.Op]:
        """We run as root: give a new node to the calling user, as a local fs would."""
        uid, gid, _pid = mfusepy.fuse_get_context()
        if (uid, gid) == (self._euid, self._egid):
            return []
        st = os.lstat(full)
        parent_sgid = os.stat(os.path.dirname(full)).st_mode & stat.S_ISGID
        new_uid = uid if st.st_uid != uid else -1
        new_gid = gid if st.st_gid != gid and not parent_sgid else -1
        if new_uid == new_gid == -1:
            return []
        os.lchown(full, new_uid, new_gid)
        return [ops.Chown(rel, new_uid, new_gid)]

    @staticmethod
    def exact_perms(st_mode: int, requested: int) -> int:
        # Our process umask must not change what the kernel asked for (it already applied
        # the caller's umask); special bits stay as the kernel produced them (sgid dirs).
        return (st_mode & 0o7000) | (requested & 0o777)

    def fixed_perms(self, full: str, mode: int) -> int:
        st = os.lstat(full)
        perms = self.exact_perms(st.st_mode, mode)
        if stat.S_IMODE(st.st_mode) != perms:
            os.chmod(full, perms)
        return perms
