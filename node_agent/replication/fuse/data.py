"""Opening and data operations of the replicating FUSE filesystem (see fusefs).

``DataOps`` works on the ``Backing`` and hands its changes over through the ``Handover``
it is given. Opening with O_TRUNC and creating change things and are replicated; writes go
through the writeback path when the kernel flushes its page cache; fsync/fdatasync are the
durability points.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from node_agent.replication import ops
from node_agent.replication.fuse.backing import Backing
from node_agent.replication.fuse.guard import guard
from node_agent.replication.fuse.handover import Handover
from node_agent.replication.fuse.order import whole
from node_agent.replication.local.syscalls import fallocate


class DataOps:
    def __init__(self, backing: Backing, handover: Handover) -> None:
        self._b, self._h = backing, handover

    # -- opening (O_TRUNC and O_CREAT change things) -----------------------------------

    @guard
    def open(self, path: str, flags: int) -> int:
        b = self._b
        full, rel = b.full(path), b.rel(path)
        fd = os.open(full, b.open_flags(flags))
        try:
            # libfuse enables atomic O_TRUNC: the truncation is ours to do and replicate.
            writable = flags & os.O_ACCMODE != os.O_RDONLY
            if flags & os.O_TRUNC and writable and os.fstat(fd).st_size:
                trunc = ops.Truncate(rel, 0)
                self._h.change((whole(rel),), lambda: (os.ftruncate(fd, 0), [trunc]))
        except BaseException:
            os.close(fd)
            raise
        return b.track(fd, rel)

    @guard
    def create(self, path: str, mode: int, flags: int) -> int:
        b = self._b
        full, rel = b.full(path), b.rel(path)
        opened: list[int] = []

        def apply() -> tuple[int, list[ops.Op]]:
            fd = os.open(full, b.open_flags(flags) | os.O_CREAT | (flags & os.O_EXCL), mode)
            opened.append(fd)
            st = os.fstat(fd)
            perms = b.exact_perms(st.st_mode, mode)
            if stat.S_IMODE(st.st_mode) != perms:
                os.fchmod(fd, perms)
            todo: list[ops.Op] = [ops.Create(rel, stat.S_IFREG | perms)]
            if flags & os.O_TRUNC and st.st_size:
                os.ftruncate(fd, 0)
                todo.append(ops.Truncate(rel, 0))
            return fd, todo + b.owner_ops(full, rel)

        try:
            return b.track(self._h.change((whole(rel),), apply), rel)
        except BaseException:
            for fd in opened:  # the app gets an error, not a handle: do not leak the fd
                os.close(fd)
            raise

    # -- data --------------------------------------------------------------------------

    @guard
    def write(
        self, path: str | None, data: bytes, offset: int, fh: int, cached: bool = False
    ) -> int:
        """``cached``: a writeback of the kernel's page cache (see writeback.py)."""
        rel = self._b.path_of(path, fh)

        def apply() -> tuple[int, list[ops.Op]]:
            n = os.pwrite(fh, data, offset)
            return n, [ops.Write(rel, offset, data if n == len(data) else data[:n])]

        intent = ops.Write(rel, offset, data)
        n = self._h.change(((rel, offset, offset + len(data)),), apply, cached, intent)
        self._b.wrote(fh, offset, n)
        return n

    @guard
    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        full, rel = self._b.full(path), self._b.rel(path)
        op = ops.Truncate(rel, length)
        self._h.change((whole(rel),), lambda: (os.truncate(full, length), [op]))
        return 0

    @guard
    def fallocate(self, path: str | None, mode: int, offset: int, size: int, fh: int) -> int:
        rel = self._b.path_of(path, fh)

        def apply() -> tuple[int, list[ops.Op]]:
            fallocate(fh, mode, offset, size)
            return 0, [ops.Fallocate(rel, mode, offset, size)]

        return self._h.change((whole(rel),), apply)

    @guard
    def fsync(self, path: str | None, datasync: int, fh: int) -> int:
        rel = self._b.path_of(path, fh)
        return self._sync(rel, datasync, lambda: (os.fdatasync if datasync else os.fsync)(fh))

    @guard
    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        full, rel = self._b.full(path), self._b.rel(path)

        def local() -> None:
            fd = os.open(full, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                (os.fdatasync if datasync else os.fsync)(fd)
            finally:
                os.close(fd)

        return self._sync(rel, datasync, local)

    def _sync(self, rel: str, datasync: int, local: Callable[[], None]) -> int:
        self._h.sync(ops.Fsync(rel, bool(datasync)), local)  # "" (the root) = syncfs there
        return 0
