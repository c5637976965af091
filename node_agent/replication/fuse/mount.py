"""Mount / unmount a module's replicating FUSE filesystem (DESIGN §5).

``Mount(backing, mountpoint, replicator).start()`` runs the libfuse main loop (multithreaded,
foreground) in a background thread of the agent and returns once the mount answers;
``stop()`` unmounts and joins the thread. No ``auto_unmount`` on purpose: if the agent
dies, a dead mount ("Transport endpoint is not connected") makes the application fail
instead of silently writing into the bare directory underneath; the next ``start()``
recognizes such a stale mount of ours and clears it.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import mfusepy

from node_agent.replication.fuse.fusefs import ReplicatingFS
from node_agent.replication.replicator import Replicator

log = logging.getLogger(__name__)

FSTYPE = "fuse.mirrorpair"  # what /proc/self/mountinfo shows for our mounts
_libc = ctypes.CDLL(None, use_errno=True)
_libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
_libc.signal.restype = ctypes.c_void_p
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
MNT_DETACH = 2
_OCTAL = re.compile(r"\\([0-7]{3})")  # mountinfo escapes space, tab, \n, \\


class MountError(RuntimeError):
    """The filesystem could not be mounted (or the mountpoint is unusable)."""


def clear_stale_mounts(mp: str) -> None:
    """Clear the dead MirrorPair mounts a killed agent left on ``mp`` (they can be
    stacked) and create ``mp`` if it is missing; MountError for a dead mount not ours."""
    for _ in range(8):
        try:
            os.statvfs(mp)  # always asks the server (a stat may be served from cache)
            return
        except FileNotFoundError:
            os.makedirs(mp, exist_ok=True)
        except OSError as e:
            if e.errno != errno.ENOTCONN:
                raise MountError(f"mountpoint {mp}: {e}") from e
            entry = mount_entry(mp)
            if entry is None or entry[0] != FSTYPE:
                raise MountError(f"{mp} holds a dead mount that is not ours: {entry}") from e
            log.warning("clearing a stale MirrorPair mount at %s", mp)
            _fusermount("-uz", mp)


_PyGILState_Ensure = ctypes.pythonapi.PyGILState_Ensure
_PyGILState_Ensure.restype = ctypes.c_int
_thread_pinned = threading.local()


def _keep_thread_state() -> None:
    """libfuse's worker threads are not Python's: ctypes gives each callback a fresh
    Python thread state and frees it on return -- a 16 KiB frame stack mapped and
    unmapped (an mmap, page faults, an munmap and its TLB shootdown) and more, for every
    request. One more PyGILState_Ensure, never released, keeps the thread's state for
    all its later callbacks (measured: 5 mmap/munmap pairs per 4 KiB write+fsync gone)."""
    if not getattr(_thread_pinned, "done", False):
        _PyGILState_Ensure()
        _thread_pinned.done = True


class _FUSE(mfusepy.FUSE):
    """mfusepy 3.1 drops rename's flags on libfuse3; pass them on (RENAME_NOREPLACE /
    RENAME_EXCHANGE must not silently become a plain, overwriting rename). And it hides
    whether a write is the kernel's writeback (fusefs answers those at once)."""

    def _wrapper(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        _keep_thread_state()  # every request from libfuse comes through here
        return super()._wrapper(func, *args, **kwargs)

    def rename_fuse_3(self, old: bytes, new: bytes, flags: int) -> int:
        dec = self.encoding, self.errors
        return self.operations.rename(old.decode(*dec), new.decode(*dec), flags)

    def write(self, path: bytes | None, buf: Any, size: int, offset: int, fip: Any) -> int:
        # As mfusepy's, plus fuse_file_info.writepage: a writeback from the page cache.
        fi = fip.contents
        name = None if path is None else path.decode(self.encoding, self.errors)
        data = ctypes.string_at(buf, size)
        return self.operations.write(name, data, offset, fi.fh, bool(fi.writepage))


def mount_entry(mountpoint: str) -> tuple[str, str] | None:
    """(fstype, source) of the topmost mount at ``mountpoint``, from /proc/self/mountinfo."""
    found = None
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            point = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), left.split()[4])
            if point == mountpoint and right:
                fstype, source = (right.split() + [""])[:2]
                found = (fstype, source)
    return found


def _fusermount(*args: str) -> bool:
    exe = shutil.which("fusermount3") or shutil.which("fusermount")
    if exe is None:  # we are root: the plain syscall does the same
        path = os.fsencode(args[-1])
        return _libc.umount2(path, MNT_DETACH if "-z" in args[0] else 0) == 0
    res = subprocess.run([exe, *args], capture_output=True, text=True, check=False)
    if res.returncode:
        log.debug("%s %s: %s", exe, " ".join(args), res.stderr.strip())
    return res.returncode == 0


def _undo_libfuse_signal_handlers() -> None:
    """fuse_main_real installs SIGHUP/SIGINT/SIGTERM handlers (where the disposition was
    the default) that end *its* loop: a SIGTERM to the agent would then silently unmount
    one module instead of stopping the process. Put the default back where Python has no
    handler of its own. Called once the loop answered a request, i.e. after libfuse
    installed them."""
    with open("/proc/self/status", encoding="ascii") as f:
        caught = next(int(ln.split()[1], 16) for ln in f if ln.startswith("SigCgt:"))
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) == signal.SIG_DFL and caught >> (sig - 1) & 1:
            _libc.signal(sig, None)  # SIG_DFL


def _abort_connection(conn: int) -> None:
    """Fail every pending request of a FUSE connection (frees processes stuck on it)."""
    ctl = Path("/sys/fs/fuse/connections")
    if not (ctl / str(conn)).exists() and not os.path.ismount(ctl):
        subprocess.run(["mount", "-t", "fusectl", "fusectl", str(ctl)], check=False)
    (ctl / str(conn) / "abort").write_text("1")


class Mount:
    """One module's FUSE mount: ``backing`` (local copy) shown at ``mountpoint``."""

    def __init__(
        self, backing: Path, mountpoint: Path, replicator: Replicator, **fs_options: Any
    ) -> None:
        self.backing = Path(os.path.realpath(backing))
        self.mountpoint = Path(os.path.abspath(mountpoint))
        self.replicator = replicator
        self.fs_options = fs_options  # passed to ReplicatingFS (writeback_cache, ...)
        self.fs: ReplicatingFS | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._conn: int | None = None  # /sys/fs/fuse/connections/<n>
        self._lock = threading.Lock()

    @property
    def mounted(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Mount:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- start -------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Mount and return once the filesystem answers; MountError if it cannot."""
        with self._lock:
            if self.mounted:
                return
            self._check()
            self._prepare_mountpoint()
            self._error = None
            self.fs = ReplicatingFS(self.backing, self.replicator, **self.fs_options)
            self._thread = threading.Thread(
                target=self._run, name=f"fuse:{self.mountpoint}", daemon=True
            )
            self._thread.start()
            try:
                self._wait_live(timeout)
            except BaseException:
                self._stop_locked(timeout)
                raise
            _undo_libfuse_signal_handlers()
            log.info("mounted %s over %s", self.mountpoint, self.backing)

    def _check(self) -> None:
        if not os.path.exists("/dev/fuse"):
            raise MountError("/dev/fuse is missing: load the fuse module (modprobe fuse)")
        if not self.backing.is_dir():
            raise MountError(f"backing directory {self.backing} does not exist")
        b, m = str(self.backing), str(self.mountpoint)
        if b == m or m.startswith(b + "/") or b.startswith(m + "/"):
            raise MountError(f"mountpoint {m} and backing {b} must not contain each other")

    def _prepare_mountpoint(self) -> None:
        mp = str(self.mountpoint)
        clear_stale_mounts(mp)
        if os.path.ismount(mp):
            raise MountError(f"{mp} is already a mount point ({mount_entry(mp)})")
        if not os.path.isdir(mp):
            raise MountError(f"mountpoint {mp} is not a directory")
        if os.listdir(mp):
            raise MountError(f"mountpoint {mp} is not empty")

    def _run(self) -> None:
        assert self.fs is not None
        fsname = "mirrorpair:" + str(self.backing).replace(",", "_")
        try:
            _FUSE(
                self.fs,
                str(self.mountpoint),
                foreground=True,  # never let libfuse fork: we are a thread of the agent
                nothreads=False,  # multithreaded loop
                # Without a value, libfuse 3.14.0 checks its "unlimited" idle default
                # against the thread cap and prints "Ignoring invalid max threads value
                # 4294967295" on every mount; at the cap (10) no idle thread exits, as
                # with the default.
                max_idle_threads=10,
                allow_other=True,
                default_permissions=True,  # the kernel checks modes (we run as root)
                fsname=fsname,
                subtype="mirrorpair",
            )
        except BaseException as e:  # reported by start(); the loop must not take us down
            self._error = e
            log.error("FUSE loop for %s ended with %r", self.mountpoint, e)

    def _wait_live(self, timeout: float) -> None:
        mp = str(self.mountpoint)
        deadline = time.monotonic() + timeout
        assert self._thread is not None
        while time.monotonic() < deadline:
            if not self._thread.is_alive():
                raise MountError(
                    f"FUSE mount of {mp} failed ({self._error!r}); see the agent's stderr "
                    "for libfuse's message (is /dev/fuse usable, are we root?)"
                )
            entry = mount_entry(mp)
            if entry is not None and entry[0] == FSTYPE:
                os.statvfs(mp)  # answered only once the loop runs (after libfuse's setup)
                self._conn = os.minor(os.stat(mp).st_dev)
                return
            time.sleep(0.01)
        raise MountError(f"FUSE mount of {mp} not live after {timeout:.0f} s")

    def fence(self) -> None:
        """This node stopped serving the module (write gate FENCE): abort the connection
        now, so that every pending and later request fails and nothing -- not even the
        page cache -- is served any more. ``stop()`` then clears the dead mount."""
        if self.mounted:
            self._abort(str(self.mountpoint))

    def _abort(self, mp: str) -> None:
        if self._conn is None:
            return
        log.warning("%s: aborting FUSE connection %s", mp, self._conn)
        try:
            _abort_connection(self._conn)
        except OSError as e:
            log.error("cannot abort FUSE connection %s: %s", self._conn, e)

    # -- stop --------------------------------------------------------------------------

    def stop(self, timeout: float = 10.0) -> None:
        """Unmount and join the loop thread. Safe to call twice, or without start()."""
        with self._lock:
            self._stop_locked(timeout)

    def _stop_locked(self, timeout: float) -> None:
        thread, mp = self._thread, str(self.mountpoint)
        if thread is None:
            return
        deadline = time.monotonic() + timeout
        # A plain unmount fails (EBUSY) while something uses the mount: retry for half the
        # time, then cut the remaining users off (abort: they get ENOTCONN). Never detach
        # lazily: their next path lookup would land in the bare directory underneath and
        # write there, unreplicated. The dead mount stays until the next start clears it.
        while thread.is_alive() and not _fusermount("-u", mp):
            if time.monotonic() > deadline - timeout / 2:
                log.warning("%s still in use after the resource stopped: cutting it off", mp)
                self._abort(mp)
                break
            time.sleep(0.05)
        thread.join(max(0.1, deadline - time.monotonic()))
        if thread.is_alive():
            self._abort(mp)
            thread.join(2.0)
        if thread.is_alive():
            log.error("FUSE loop for %s did not stop", mp)
        elif (entry := mount_entry(mp)) and entry[0] == FSTYPE and not _fusermount("-u", mp):
            # aborted: gone if nobody holds it any more
            log.warning("%s: a dead mount stays while something still holds it", mp)
        if self.fs is not None:
            self.fs.close_all()
        self._thread = None
        self._conn = None
        log.info("unmounted %s", mp)
