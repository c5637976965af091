"""The primary's interception: a replicating passthrough FUSE filesystem (DESIGN §5).

``ReplicatingFS`` is an mfusepy ``Operations`` over a backing directory (the module's local
copy). Every operation that changes data or names is applied to the backing directory
first, then handed to ``replicator.replicate(op)``; the application gets its answer only
when that returns (or the errno of the OSError it raised). Read-only operations are
local only.

Ordering guarantee: operations on the same path whose effects could conflict are applied
locally and handed over in the same order (see order.py); writes to disjoint ranges
and operations on other paths run concurrently. If the replicator offers the optional
``submit(op) -> wait`` (enqueue in order, return a callable that blocks until safe), the
claim ends once the op is submitted, and the waits are pipelined.

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

import contextlib
import errno
import logging
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import mfusepy
from mfusepy import FuseOSError

from node_agent.replication import ops
from node_agent.replication.fuse.data import DataOps
from node_agent.replication.fuse.namespace import NamespaceOps, guard
from node_agent.replication.fuse.order import OrderGate, WritersLock
from node_agent.replication.fuse.writeback import Writeback
from node_agent.replication.local.early_flush import EarlyFlush
from node_agent.replication.replicator import Replicator

log = logging.getLogger(__name__)

T = TypeVar("T")

# libfuse3 FUSE_CAP_* bits (fuse_common.h)
CAP_ATOMIC_O_TRUNC = 1 << 3
CAP_WRITEBACK_CACHE = 1 << 16
CAP_HANDLE_KILLPRIV = 1 << 20

# O_DIRECT: the backing copy is a plain page-cached file (QEMU cache=none uses it and the
# backing fs may reject it). O_APPEND: we pwrite at the offset the kernel chose, and
# pwrite on an O_APPEND fd ignores the offset. The rest is done explicitly by create/open.
_STRIP = os.O_DIRECT | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_TRUNC | os.O_NOCTTY
# fmt: off
_STAT_KEYS = ("st_mode", "st_ino", "st_nlink", "st_uid", "st_gid", "st_size", "st_rdev",
              "st_blocks", "st_blksize")
_STATVFS_KEYS = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files",
                 "f_ffree", "f_favail", "f_flag", "f_namemax")
# fmt: on


class ReplicatingFS(DataOps, NamespaceOps, mfusepy.Operations):
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
        self.backing = os.path.realpath(backing)
        self.replicator = replicator
        self.writeback_cache = writeback_cache
        self.max_background = max_background
        self.max_write = max_write
        self.attr_timeout = attr_timeout
        self.entry_timeout = entry_timeout
        self.negotiated: dict[str, int] = {}  # filled by init (capable/want/...)
        self._gate = OrderGate()
        self._submit = getattr(replicator, "submit", None)
        self._prepare = getattr(replicator, "prepare", None)
        # With submit(): held shared around "apply locally + submit". Public so that the
        # module's replication can pause all writers (no change applied, not submitted).
        self.writers = WritersLock()
        self._fh_paths: dict[int, str] = {}  # open backing fd -> relative path
        self._fh_lock = threading.Lock()
        self._euid, self._egid = os.geteuid(), os.getegid()
        self._writeback = Writeback(self.backing)
        self._early = EarlyFlush() if early_flush else None  # see early_flush.py

    # -- plumbing ----------------------------------------------------------------------

    def _full(self, path: str) -> str:
        # libfuse hands normalized absolute paths of its own namespace ("/", "/a/b").
        return self.backing + path if path != "/" else self.backing

    @staticmethod
    def _rel(path: str) -> str:
        return path.lstrip("/")

    def _change(
        self, keys: tuple[Any, ...], apply: Callable[[], tuple[T, list[ops.Op]]],
        background: bool = False, intent: ops.Op | None = None,
    ) -> T:  # fmt: skip
        """Apply locally, then hand the resulting operations over, in a consistent order.

        ``apply`` returns (value for the application, operations to replicate); it runs
        only once the claim on ``keys`` is held. A local failure replicates nothing.
        ``background``: nobody waits for this (kernel writeback): the replicator's waits
        go to the writeback thread, settled by the next durability point. ``intent``: the
        one op ``apply`` will produce (a Write, or a prefix of it), recorded before it
        runs when the replicator can (``prepare``).
        """
        if getattr(self.replicator, "fenced", False):
            raise FuseOSError(errno.EIO)  # this node no longer serves: change nothing
        if self._submit is not None:
            prepared = self._prepare(intent) if intent is not None and self._prepare else None
            with self._gate.claim(*keys), self.writers.shared():  # claim first: see WritersLock
                try:
                    result, todo = apply()
                except BaseException:
                    if prepared is not None:  # nothing written: drop its record
                        self.replicator.abandon(prepared)  # type: ignore[attr-defined]
                    raise
                waits = [self._submit(op, prepared) if prepared is not None and i == 0
                         else self._submit(op) for i, op in enumerate(todo)]  # fmt: skip
            if background:
                self._writeback.add(waits)
                return result
            for wait in waits:
                wait()
            return result
        with self._gate.claim(*keys):
            result, todo = apply()
            for op in todo:
                self.replicator.replicate(op)
        return result

    def _owner_ops(self, full: str, rel: str) -> list[ops.Op]:
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
    def _exact_perms(st_mode: int, requested: int) -> int:
        # Our process umask must not change what the kernel asked for (it already applied
        # the caller's umask); special bits stay as the kernel produced them (sgid dirs).
        return (st_mode & 0o7000) | (requested & 0o777)

    def _open_flags(self, flags: int) -> int:
        flags = (flags & ~_STRIP) | os.O_CLOEXEC | os.O_NOFOLLOW
        if self.writeback_cache and flags & os.O_ACCMODE == os.O_WRONLY:
            # The kernel reads pages back for partial-page writes into its cache.
            flags = (flags & ~os.O_ACCMODE) | os.O_RDWR
        return flags

    def _track(self, fd: int, rel: str) -> int:
        with self._fh_lock:
            self._fh_paths[fd] = rel
        return fd

    def _path_of(self, path: str | None, fh: int) -> str:
        # libfuse's path is authoritative: its tree lock keeps it valid during the call.
        if path is not None:
            return self._rel(path)
        with self._fh_lock:
            rel = self._fh_paths.get(fh)
        if rel is None:
            raise FuseOSError(errno.EIO)
        return rel

    def _renamed(self, src: str, dst: str, exchange: bool) -> None:
        def move(p: str, a: str, b: str) -> str | None:
            if p == a or p.startswith(a + "/"):
                return b + p[len(a) :]
            return None

        with self._fh_lock:
            for fd, p in self._fh_paths.items():
                new = move(p, src, dst) or (move(p, dst, src) if exchange else None)
                if new is not None:
                    self._fh_paths[fd] = new

    def close_all(self) -> None:
        """Close backing fds the kernel never released (aborted connection), and end the
        writeback thread."""
        self._writeback.close()
        with self._fh_lock:
            fds, self._fh_paths = list(self._fh_paths), {}
        for fd in fds:
            if self._early is not None:
                self._early.forget(fd)
            with contextlib.suppress(OSError):
                os.close(fd)

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
        st = os.fstat(fh) if fh is not None else os.lstat(self._full(path))
        attrs = {k: getattr(st, k) for k in _STAT_KEYS}
        attrs.update(st_atime=st.st_atime_ns, st_mtime=st.st_mtime_ns, st_ctime=st.st_ctime_ns)
        return attrs

    @guard
    def readlink(self, path: str) -> str:
        return os.readlink(self._full(path))

    @guard
    def readdir(self, path: str, fh: int) -> list[Any]:
        # A list, not a generator: errors must surface inside the guard.
        entries: list[Any] = [".", ".."]
        with os.scandir(self._full(path)) as it:
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
        sv = os.statvfs(self._full(path))
        return {k: getattr(sv, k) for k in _STATVFS_KEYS}

    @guard
    def access(self, path: str, amode: int) -> int:
        if not os.access(self._full(path), amode, follow_symlinks=False):
            raise FuseOSError(errno.EACCES)
        return 0

    @guard
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return os.pread(fh, size, offset)

    @guard
    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        return os.getxattr(self._full(path), name, follow_symlinks=False)

    @guard
    def listxattr(self, path: str) -> list[str]:
        return os.listxattr(self._full(path), follow_symlinks=False)

    @guard
    def flush(self, path: str, fh: int) -> int:
        # close(): the kernel has written this file's dirty pages back; they are safe
        # once the writeback thread settled them (see the module docstring).
        self._writeback.barrier()
        return 0

    @guard
    def release(self, path: str, fh: int) -> int:
        with self._fh_lock:
            self._fh_paths.pop(fh, None)
        if self._early is not None:
            self._early.forget(fh)
        os.close(fh)
        return 0
