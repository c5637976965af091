"""Opening and data operations of the replicating FUSE filesystem (see fusefs).

Split out of fusefs only for size: ``DataOps`` is a mixin of ``ReplicatingFS`` and uses
its helpers (_full, _rel, _change, _track, _path_of, _open_flags, _owner_ops,
_exact_perms, _writeback, writers, replicator). Opening with O_TRUNC and creating
change things and are replicated; writes go through the writeback path when the kernel
flushes its page cache; fsync/fdatasync are the durability points.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING

from mfusepy import FuseOSError

from node_agent.replication import ops
from node_agent.replication.fuse.namespace import guard
from node_agent.replication.fuse.order import whole
from node_agent.replication.local.syscalls import fallocate

if TYPE_CHECKING:
    from node_agent.replication.fuse.fusefs import ReplicatingFS

    _Base = ReplicatingFS
else:
    _Base = object


class DataOps(_Base):
    # -- opening (O_TRUNC and O_CREAT change things) -----------------------------------

    @guard
    def open(self, path: str, flags: int) -> int:
        full, rel = self._full(path), self._rel(path)
        fd = os.open(full, self._open_flags(flags))
        try:
            # libfuse enables atomic O_TRUNC: the truncation is ours to do and replicate.
            writable = flags & os.O_ACCMODE != os.O_RDONLY
            if flags & os.O_TRUNC and writable and os.fstat(fd).st_size:
                trunc = ops.Truncate(rel, 0)
                self._change((whole(rel),), lambda: (os.ftruncate(fd, 0), [trunc]))
        except BaseException:
            os.close(fd)
            raise
        return self._track(fd, rel)

    @guard
    def create(self, path: str, mode: int, flags: int) -> int:
        full, rel = self._full(path), self._rel(path)
        opened: list[int] = []

        def apply() -> tuple[int, list[ops.Op]]:
            fd = os.open(full, self._open_flags(flags) | os.O_CREAT | (flags & os.O_EXCL), mode)
            opened.append(fd)
            st = os.fstat(fd)
            perms = self._exact_perms(st.st_mode, mode)
            if stat.S_IMODE(st.st_mode) != perms:
                os.fchmod(fd, perms)
            todo: list[ops.Op] = [ops.Create(rel, stat.S_IFREG | perms)]
            if flags & os.O_TRUNC and st.st_size:
                os.ftruncate(fd, 0)
                todo.append(ops.Truncate(rel, 0))
            return fd, todo + self._owner_ops(full, rel)

        try:
            return self._track(self._change((whole(rel),), apply), rel)
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
        rel = self._path_of(path, fh)

        def apply() -> tuple[int, list[ops.Op]]:
            n = os.pwrite(fh, data, offset)
            return n, [ops.Write(rel, offset, data if n == len(data) else data[:n])]

        intent = ops.Write(rel, offset, data)
        n = self._change(((rel, offset, offset + len(data)),), apply, cached, intent)
        if self._early is not None:
            self._early.wrote(fh, offset, n)
        return n

    @guard
    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        full, rel = self._full(path), self._rel(path)
        op = ops.Truncate(rel, length)
        self._change((whole(rel),), lambda: (os.truncate(full, length), [op]))
        return 0

    @guard
    def fallocate(self, path: str | None, mode: int, offset: int, size: int, fh: int) -> int:
        rel = self._path_of(path, fh)

        def apply() -> tuple[int, list[ops.Op]]:
            fallocate(fh, mode, offset, size)
            return 0, [ops.Fallocate(rel, mode, offset, size)]

        return self._change((whole(rel),), apply)

    def _sync(self, rel: str, datasync: int, local: Callable[[], None]) -> int:
        """fsync/fdatasync: the peer's Fsync is ordered after every change handed over
        before it; the local sync then runs outside the writers lock (it covers what was
        applied before, and other writers need not wait for the disk), concurrently with
        the peer's; the application gets its answer once both are done."""
        op = ops.Fsync(rel, bool(datasync))  # "" (the root) = syncfs there
        if getattr(self.replicator, "fenced", False):
            raise FuseOSError(errno.EIO)
        if self._submit is not None:
            with self.writers.shared():
                wait = self._submit(op)
            try:
                local()
            finally:
                wait()  # always: it also ends the op's activity-log entry
            self._writeback.barrier()  # covered by the Fsync's ACK; errors reported here
            return 0
        with self._gate.claim(whole(rel)):
            local()
            self.replicator.replicate(op)
        return 0

    @guard
    def fsync(self, path: str | None, datasync: int, fh: int) -> int:
        rel = self._path_of(path, fh)
        return self._sync(rel, datasync, lambda: (os.fdatasync if datasync else os.fsync)(fh))

    @guard
    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        full, rel = self._full(path), self._rel(path)

        def local() -> None:
            fd = os.open(full, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                (os.fdatasync if datasync else os.fsync)(fd)
            finally:
                os.close(fd)

        return self._sync(rel, datasync, local)
