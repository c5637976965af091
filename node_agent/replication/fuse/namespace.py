"""Namespace and metadata operations of the replicating FUSE filesystem (see fusefs).

``NamespaceOps`` works on the ``Backing`` and hands its changes over through the
``Handover`` it is given. Every handler applies the change to the backing directory, then
replicates what actually happened there (final modes, resulting timestamps), so the
secondary ends up identical whatever our umask or clock.
"""

from __future__ import annotations

import errno
import os
import stat
import time

from node_agent.replication import ops
from node_agent.replication.fuse.backing import Backing
from node_agent.replication.fuse.guard import guard
from node_agent.replication.fuse.handover import Handover
from node_agent.replication.fuse.order import whole
from node_agent.replication.local.syscalls import AT_FDCWD, renameat2

RENAME_EXCHANGE = 2
UTIME_NOW = (1 << 30) - 1  # with use_ns, libfuse's {0, UTIME_*} timespecs arrive as these
UTIME_OMIT = (1 << 30) - 2


class NamespaceOps:
    """mknod, mkdir, unlink, rmdir, symlink, rename, link, chmod, chown, utimens, xattrs."""

    def __init__(self, backing: Backing, handover: Handover) -> None:
        self._b, self._h = backing, handover

    @guard
    def mknod(self, path: str, mode: int, dev: int) -> int:
        full, rel = self._b.full(path), self._b.rel(path)

        def apply() -> tuple[int, list[ops.Op]]:
            os.mknod(full, mode, dev)
            perms = self._b.fixed_perms(full, mode)
            mknod = ops.Mknod(rel, stat.S_IFMT(mode) | perms, dev)
            return 0, [mknod, *self._b.owner_ops(full, rel)]

        return self._h.change((whole(rel),), apply)

    @guard
    def mkdir(self, path: str, mode: int) -> int:
        full, rel = self._b.full(path), self._b.rel(path)

        def apply() -> tuple[int, list[ops.Op]]:
            os.mkdir(full, mode & 0o7777)
            perms = self._b.fixed_perms(full, mode)
            return 0, [ops.Mkdir(rel, perms), *self._b.owner_ops(full, rel)]

        return self._h.change((whole(rel),), apply)

    @guard
    def symlink(self, path: str, target: str) -> int:
        # mfusepy's order: symlink(new name, what it points to)
        full, rel = self._b.full(path), self._b.rel(path)

        def apply() -> tuple[int, list[ops.Op]]:
            os.symlink(target, full)
            return 0, [ops.Symlink(target, rel), *self._b.owner_ops(full, rel)]

        return self._h.change((whole(rel),), apply)

    @guard
    def link(self, path: str, source: str) -> int:
        # mfusepy's order: link(new name, existing file)
        dst, src = self._b.rel(path), self._b.rel(source)

        def apply() -> tuple[int, list[ops.Op]]:
            os.link(self._b.full(source), self._b.full(path), follow_symlinks=False)
            return 0, [ops.Link(src, dst)]

        return self._h.change((whole(src), whole(dst)), apply)

    @guard
    def unlink(self, path: str) -> int:
        full, op = self._b.full(path), ops.Unlink(self._b.rel(path))
        self._h.change((whole(op.path),), lambda: (os.unlink(full), [op]))
        return 0

    @guard
    def rmdir(self, path: str) -> int:
        full, op = self._b.full(path), ops.Rmdir(self._b.rel(path))
        self._h.change((whole(op.path),), lambda: (os.rmdir(full), [op]))
        return 0

    @guard
    def rename(self, old: str, new: str, flags: int = 0) -> int:
        src, dst = self._b.rel(old), self._b.rel(new)

        def apply() -> tuple[int, list[ops.Op]]:
            if flags:
                renameat2(AT_FDCWD, self._b.full(old), AT_FDCWD, self._b.full(new), flags)
            else:
                os.rename(self._b.full(old), self._b.full(new))
            self._b.renamed(src, dst, bool(flags & RENAME_EXCHANGE))
            return 0, [ops.Rename(src, dst, flags)]

        return self._h.change((whole(src), whole(dst)), apply)

    @guard
    def chmod(self, path: str, mode: int) -> int:
        full, rel = self._b.full(path), self._b.rel(path)

        def apply() -> tuple[int, list[ops.Op]]:
            try:
                os.chmod(full, mode & 0o7777, follow_symlinks=False)
            except NotImplementedError:  # a symlink: Linux has no symlink modes
                raise OSError(errno.EOPNOTSUPP, "chmod of a symlink") from None
            return 0, [ops.Chmod(rel, mode & 0o7777)]

        return self._h.change((whole(rel),), apply)

    @guard
    def chown(self, path: str, uid: int, gid: int) -> int:
        full, rel = self._b.full(path), self._b.rel(path)

        def apply() -> tuple[int, list[ops.Op]]:
            os.chown(full, uid, gid, follow_symlinks=False)  # -1 = unchanged
            return 0, [ops.Chown(rel, uid, gid)]

        return self._h.change((whole(rel),), apply)

    @guard
    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        full, rel = self._b.full(path), self._b.rel(path)

        def apply() -> tuple[int, list[ops.Op]]:
            now = time.time_ns()
            atime, mtime = times if times is not None else (now, now)
            if UTIME_OMIT in (atime, mtime):
                cur = os.lstat(full)
                atime = cur.st_atime_ns if atime == UTIME_OMIT else atime
                mtime = cur.st_mtime_ns if mtime == UTIME_OMIT else mtime
            atime = now if atime == UTIME_NOW else atime
            mtime = now if mtime == UTIME_NOW else mtime
            os.utime(full, ns=(atime, mtime), follow_symlinks=False)
            st = os.lstat(full)  # replicate what the fs stored (its time granularity)
            return 0, [ops.Utimens(rel, st.st_atime_ns, st.st_mtime_ns)]

        # Not a durability point (on a local disk neither): handed over in order, settled
        # by the next one, like a writeback. The kernel's writeback cache sends one with
        # every fsync, which then no longer costs an extra round trip.
        return self._h.change((whole(rel),), apply, background=True)

    @guard
    def setxattr(self, path: str, name: str, value: bytes, options: int, position: int = 0) -> int:
        full, rel = self._b.full(path), self._b.rel(path)

        def apply() -> tuple[int, list[ops.Op]]:
            os.setxattr(full, name, value, options, follow_symlinks=False)
            return 0, [ops.SetXattr(rel, name, value, options)]

        return self._h.change((whole(rel),), apply)

    @guard
    def removexattr(self, path: str, name: str) -> int:
        full, rel = self._b.full(path), self._b.rel(path)

        def apply() -> tuple[int, list[ops.Op]]:
            os.removexattr(full, name, follow_symlinks=False)
            return 0, [ops.RemoveXattr(rel, name)]

        return self._h.change((whole(rel),), apply)
