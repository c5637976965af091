"""The primary's interception: a replicating passthrough FUSE filesystem (DESIGN §5).

``ReplicatingFS`` is an mfusepy ``Operations`` over a backing directory (the module's local
copy). Every operation that changes data or names is applied to the backing directory
first, then handed to the ``Replicator`` (replicator.py) through ``Handover``
(handover.py); the application gets its answer only when the replicator's wait returns
(or the errno of the OSError it raised). Read-only operations are local only.

Composition: ``ReplicatingFS`` answers the read-only requests itself and passes every
change to ``DataOps`` (data.py: open, create, write, truncate, fallocate, fsync) or
``NamespaceOps`` (namespace.py: names, modes, owners, times, xattrs); all of them share one
``Backing`` (backing.py: paths, open files, owners of new nodes) and one ``Handover``.

Ordering guarantee: operations on the same path whose effects could conflict are applied
locally and handed over in the same order (see order.py); writes to disjoint ranges
and operations on other paths run concurrently. The claim ends once the op is submitted,
and the waits are pipelined.

Not replicated, on purpose:
- ``flush`` (every close): it is not a durability point -- the local side does nothing on
  flush either. Everything before it has already been replicated synchronously (with the
  writeback cache, the kernel writes dirty pages back before sending FLUSH). fsync and
  fdatasync, the real durability points, are replicated as ``Fsync``.
- anything read-only (getattr, readdir, open without O_TRUNC, read, readlink, statfs,
  access, getxattr, listxattr, release).

With the writeback cache (default) a buffered ``write()`` returns once it is in the
kernel's page cache, exactly like on a local disk; it is replicated when the kernel writes
it back -- that WRITE is answered at once and settled by the writeback thread
(writeback.py) -- and at the latest before fsync/fdatasync/close return. utimens, not a
durability point either, is settled the same way. O_DIRECT, O_SYNC
and O_DSYNC writes stay synchronous end to end. A Write is recorded (``prepare``) before
it is applied locally.

A file unlinked while open is renamed to ``.fuse_hidden*`` by libfuse (hard_remove off)
and removed when the kernel releases it (asynchronously, just after the last close); both
steps are replicated like any rename/unlink.

The handlers run Python code: the process that serves a mount must never itself do I/O
on that mount while holding the GIL (e.g. sqlite3's close, or touching an mmap of a file
on it) -- the request would wait for a handler that waits for the GIL. Applications are
other processes; plain os/open calls release the GIL and are fine.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path
from typing import Any

import mfusepy
from mfusepy import FuseOSError

from node_agent.replication.fuse.backing import Backing
from node_agent.replication.fuse.data import DataOps
from node_agent.replication.fuse.guard import guard
from node_agent.replication.fuse.handover import Handover
from node_agent.replication.fuse.namespace import NamespaceOps
from node_agent.replication.replicator import Replicator

log = logging.getLogger(__name__)

# libfuse3 FUSE_CAP_* bits (fuse_common.h)
CAP_ATOMIC_O_TRUNC = 1 << 3
CAP_WRITEBACK_CACHE = 1 << 16
CAP_HANDLE_KILLPRIV = 1 << 20

# fmt: off
_STAT_KEYS = ("st_mode", "st_ino", "st_nlink", "st_uid", "st_gid", "st_size", "st_rdev",
              "st_blocks", "st_blksize")
_STATVFS_KEYS = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files",
                 "f_ffree", "f_favail", "f_flag", "f_namemax")
# fmt: on


class ReplicatingFS(mfusepy.Operations):
    """Passthrough over ``backing`` that hands every change to ``replicator``."""

    use_ns = True  # nanosecond timestamps in getattr/utimens

    def __init__(
        self,
        backing: Path,
        replicator: Replicator,
        *,
        writeback_cache: bool = True,
        max_background: int = 64,
        max_write: int = 1 << 20,
        attr_timeout: float = 1.0,
        entry_timeout: float = 1.0,
        early_flush: bool = True,
    ) -> None:
        self._b = Backing(backing, writeback_cache, early_flush)  # early: early_flush.py
        self.backing = self._b.root
        self.handover = Handover(replicator, self.backing)
        # Public so that the module's replication can pause all writers (no change
        # applied, not handed over).
        self.writers = self.handover.writers
        self.data = DataOps(self._b, self.handover)
        self.names = NamespaceOps(self._b, self.handover)
        self.writeback_cache = writeback_cache
        self.max_background = max_background
        self.max_write = max_write
        self.attr_timeout = attr_timeout
        self.entry_timeout = entry_timeout
        self.negotiated: dict[str, int] = {}  # filled by init (capable/want/...)

    def close_all(self) -> None:
        """Close backing fds the kernel never released (aborted connection), and end the
        writeback thread."""
        self.handover.close()
        self._b.close_all()

    # -- init --------------------------------------------------------------------------

    def init_with_config(self, conn: Any, config: Any) -> None:
        if conn is not None:
            conn.max_write = self.max_write
            conn.max_background = self.max_background
            conn.congestion_threshold = max(1, self.max_background * 3 // 4)
            if self.writeback_cache and conn.capable & CAP_WRITEBACK_CACHE:
                conn.want |= CAP_WRITEBACK_CACHE
            # Let the kernel clear suid/sgid on writes (sent to us as a chmod, replicated);
            # as root we would not.
            conn.want &= ~CAP_HANDLE_KILLPRIV
            self.negotiated = {
                "capable": conn.capable,
                "want": conn.want,
                "max_write": conn.max_write,
                "max_background": conn.max_background,
            }
        if config is not None:
            config.use_ino = 1  # real inode numbers: hard links stay recognizable
            config.attr_timeout = self.attr_timeout
            config.entry_timeout = self.entry_timeout
            config.negative_timeout = 0.0
        log.info("FUSE init over %s: %s", self.backing, self.negotiated)

    # -- read-only, local ----------------------------------------------------------------

    @guard
    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        st = os.fstat(fh) if fh is not None else os.lstat(self._b.full(path))
        attrs = {k: getattr(st, k) for k in _STAT_KEYS}
        attrs.update(st_atime=st.st_atime_ns, st_mtime=st.st_mtime_ns, st_ctime=st.st_ctime_ns)
        return attrs

    @guard
    def readlink(self, path: str) -> str:
        return os.readlink(self._b.full(path))

    @guard
    def readdir(self, path: str, fh: int) -> list[Any]:
        # A list, not a generator: errors must surface inside the guard.
        entries: list[Any] = [".", ".."]
        with os.scandir(self._b.full(path)) as it:
            for e in it:  # d_type and d_ino only: no stat per entry
                if e.is_dir(follow_symlinks=False):
                    mode = stat.S_IFDIR
                elif e.is_symlink():
                    mode = stat.S_IFLNK
                else:
                    mode = stat.S_IFREG if e.is_file(follow_symlinks=False) else 0
                entries.append((e.name, {"st_mode": mode, "st_ino": e.inode()}, 0))
        return entries

    @guard
    def statfs(self, path: str) -> dict[str, int]:
        sv = os.statvfs(self._b.full(path))
        return {k: getattr(sv, k) for k in _STATVFS_KEYS}

    @guard
    def access(self, path: str, amode: int) -> int:
        if not os.access(self._b.full(path), amode, follow_symlinks=False):
            raise FuseOSError(errno.EACCES)
        return 0

    @guard
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return os.pread(fh, size, offset)

    @guard
    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        return os.getxattr(self._b.full(path), name, follow_symlinks=False)

    @guard
    def listxattr(self, path: str) -> list[str]:
        return os.listxattr(self._b.full(path), follow_symlinks=False)

    @guard
    def flush(self, path: str, fh: int) -> int:
        # close(): the kernel has written this file's dirty pages back; they are safe
        # once the writeback thread settled them (see the module docstring).
        self.handover.barrier()
        return 0

    @guard
    def release(self, path: str, fh: int) -> int:
        self._b.release(fh)
        return 0

    # -- changes: data.py and namespace.py ---------------------------------------------

    def open(self, path: str, flags: int) -> int:
        return self.data.open(path, flags)

    def create(self, path: str, mode: int, flags: int) -> int:
        return self.data.create(path, mode, flags)

    def write(
        self, path: str | None, data: bytes, offset: int, fh: int, cached: bool = False
    ) -> int:
        return self.data.write(path, data, offset, fh, cached)

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        return self.data.truncate(path, length, fh)

    def fallocate(self, path: str | None, mode: int, offset: int, size: int, fh: int) -> int:
        return self.data.fallocate(path, mode, offset, size, fh)

    def fsync(self, path: str | None, datasync: int, fh: int) -> int:
        return self.data.fsync(path, datasync, fh)

    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        return self.data.fsyncdir(path, datasync, fh)

    def mknod(self, path: str, mode: int, dev: int) -> int:
        return self.names.mknod(path, mode, dev)

    def mkdir(self, path: str, mode: int) -> int:
        return self.names.mkdir(path, mode)

    def symlink(self, path: str, target: str) -> int:
        return self.names.symlink(path, target)

    def link(self, path: str, source: str) -> int:
        return self.names.link(path, source)

    def unlink(self, path: str) -> int:
        return self.names.unlink(path)

    def rmdir(self, path: str) -> int:
        return self.names.rmdir(path)

    def rename(self, old: str, new: str, flags: int = 0) -> int:
        return self.names.rename(old, new, flags)

    def chmod(self, path: str, mode: int) -> int:
        return self.names.chmod(path, mode)

    def chown(self, path: str, uid: int, gid: int) -> int:
        return self.names.chown(path, uid, gid)

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        return self.names.utimens(path, times)

    def setxattr(self, path: str, name: str, value: bytes, options: int, position: int = 0) -> int:
        return self.names.setxattr(path, name, value, options, position)

    def removexattr(self, path: str, name: str) -> int:
        return self.names.removexattr(path, name)
