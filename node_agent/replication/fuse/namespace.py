"""Namespace and metadata operations of the replicating FUSE filesystem (see fusefs).

Split out of fusefs only for size: ``NamespaceOps`` is a mixin of ``ReplicatingFS`` and
uses its helpers (_full, _rel, _change, _owner_ops, _exact_perms, _renamed). Every
handler applies the change to the backing directory, then replicates what actually
happened there (final modes, resulting timestamps), so the secondary ends up identical
whatever our umask or clock.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import stat
import time
from collections.abc import Callable
from typing import Any, TypeVar

from mfusepy import FuseOSError

from node_agent.replication import ops
from node_agent.replication.fuse.order import whole
from node_agent.replication.local.syscalls import AT_FDCWD, renameat2

log = logging.getLogger("node_agent.replication.fuse.fusefs")

T = TypeVar("T")

RENAME_EXCHANGE = 2
UTIME_NOW = (1 << 30) - 1  # with use_ns, libfuse's {0, UTIME_*} timespecs arrive as these
UTIME_OMIT = (1 << 30) - 2


def guard(func: Callable[..., T]) -> Callable[..., T]:
    """Every failure becomes a FUSE errno: an escaping exception must never take the
    mount down (the application would then write into the bare directory underneath).
    OSError -> its errno; anything else -> logged, EIO."""

    @functools.wraps(func)
    def wrapper(self: Any, *args: Any) -> T:
        try:
            return func(self, *args)
        except FuseOSError:
            raise
        except OSError as e:
            code = e.errno if isinstance(e.errno, int) and e.errno > 0 else errno.EIO
            raise FuseOSError(code) from None
        except Exception:
            log.exception("FUSE %s(%r) failed", func.__name__, args[:1])
            raise FuseOSError(errno.EIO) from None

    return wrapper


class NamespaceOps:
    """mknod, mkdir, unlink, rmdir, symlink, rename, link, chmod, chown, utimens, xattrs."""

    # provided by ReplicatingFS
    _full: Callable[[str], str]
    _rel: Callable[[str], str]
    _change: Callable[..., Any]
    _owner_ops: Callable[[str, str], list[ops.Op]]
    _exact_perms: Callable[[int, int], int]
    _renamed: Callable[[str, str, bool], None]

    def _fixed_perms(self, full: str, mode: int) -> int:
        st = os.lstat(full)
        perms = self._exact_perms(st.st_mode, mode)
        if stat.S_IMODE(st.st_mode) != perms:
            os.chmod(full, perms)
        return perms

    @guard
    def mknod(self, path: str, mode: int, dev: int) -> int:
        full, rel = self._full(path), self._rel(path)

        def apply() -> tuple[int, list[ops.Op]]:
            os.mknod(full, mode, dev)
            perms = self._fixed_perms(full, mode)
            return 0, [ops.Mknod(rel, stat.S_IFMT(mode) | perms, dev), *self._owner_ops(full, rel)]

        return self._change((whole(rel),), apply)

    @guard
    def mkdir(self, path: str, mode: int) -> int:
        full, rel = self._full(path), self._rel(path)

        def apply() -> tuple[int, list[ops.Op]]:
            os.mkdir(full, mode & 0o7777)
            perms = self._fixed_perms(full, mode)
            return 0, [ops.Mkdir(rel, perms), *self._owner_ops(full, rel)]

        return self._change((whole(rel),), apply)

    @guard
    def symlink(self, path: str, target: str) -> int:
        # mfusepy's order: symlink(new name, what it points to)
        full, rel = self._full(path), self._rel(path)

        def apply() -> tuple[int, list[ops.Op]]:
            os.symlink(target, full)
            return 0, [ops.Symlink(target, rel), *self._owner_ops(full, rel)]

        return self._change((whole(rel),), apply)

    @guard
    def link(self, path: str, source: str) -> int:
        # mfusepy's order: link(new name, existing file)
        dst, src = self._rel(path), self._rel(source)

        def apply() -> tuple[int, list[ops.Op]]:
            os.link(self._full(source), self._full(path), follow_symlinks=False)
            return 0, [ops.Link(src, dst)]

        return self._change((whole(src), whole(dst)), apply)

    @guard
    def unlink(self, path: str) -> int:
        full, op = self._full(path), ops.Unlink(self._rel(path))
        self._change((whole(op.path),), lambda: (os.unlink(full), [op]))
        return 0

    @guard
    def rmdir(self, path: str) -> int:
        full, op = self._full(path), ops.Rmdir(self._rel(path))
        self._change((whole(op.path),), lambda: (os.rmdir(full), [op]))
        return 0

    @guard
    def rename(self, old: str, new: str, flags: int = 0) -> int:
        src, dst = self._rel(old), self._rel(new)

        def apply() -> tuple[int, list[ops.Op]]:
            if flags:
                renameat2(AT_FDCWD, self._full(old), AT_FDCWD, self._full(new), flags)
            else:
                os.rename(self._full(old), self._full(new))
            self._renamed(src, dst, bool(flags & RENAME_EXCHANGE))
            return 0, [ops.Rename(src, dst, flags)]

        return self._change((whole(src), whole(dst)), apply)

    @guard
    def chmod(self, path: str, mode: int) -> int:
        full, rel = self._full(path), self._rel(path)

        def apply() -> tuple[int, list[ops.Op]]:
            try:
                os.chmod(full, mode & 0o7777, follow_symlinks=False)
            except NotImplementedError:  # a symlink: Linux has no symlink modes
                raise OSError(errno.EOPNOTSUPP, "chmod of a symlink") from None
            return 0, [ops.Chmod(rel, mode & 0o7777)]

        return self._change((whole(rel),), apply)

    @guard
    def chown(self, path: str, uid: int, gid: int) -> int:
        full, rel = self._full(path), self._rel(path)

        def apply() -> tuple[int, list[ops.Op]]:
            os.chown(full, uid, gid, follow_symlinks=False)  # -1 = unchanged
            return 0, [ops.Chown(rel, uid, gid)]

        return self._change((whole(rel),), apply)

    @guard
    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        full, rel = self._full(path), self._rel(path)

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
        return self._change((whole(rel),), apply, background=True)

    @guard
    def setxattr(self, path: str, name: str, value: bytes, options: int, position: int = 0) -> int:
        full, rel = self._full(path), self._rel(path)

        def apply() -> tuple[int, list[ops.Op]]:
            os.setxattr(full, name, value, options, follow_symlinks=False)
            return 0, [ops.SetXattr(rel, name, value, options)]

        return self._change((whole(rel),), apply)

    @guard
    def removexattr(self, path: str, name: str) -> int:
        full, rel = self._full(path), self._rel(path)

        def apply() -> tuple[int, list[ops.Op]]:
            os.removexattr(full, name, follow_symlinks=False)
            return 0, [ops.RemoveXattr(rel, name)]

        return self._change((whole(rel),), apply)
