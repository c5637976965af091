"""A libvirtd of the tests' own: libvirtd and virtlogd in a mount namespace where
test-owned directories are bound over /etc/libvirt, /run/libvirt, /var/lib/libvirt,
/var/cache/libvirt and /var/log/libvirt. So every server of a site runs its own daemons
(own sockets, domains, state and logs), none of them touches the machine's own libvirt
(if it has one), and ``qemu:///system`` inside that namespace reaches this daemon.

Two ways to place it:

* ``Libvirtd(state)`` -- a plain local daemon: libvirtd gets a mount namespace of its own
  (``unshare --mount``), for tests that need no network namespaces;
* ``Libvirtd(state, enter=site.nsenter(node))`` -- inside a site server's network and
  persistent mount namespaces (tests/integration/site_libvirt.py does this for a Site);
  the binds stay in that server's namespace, as a real server's directories would.

From the test process (any namespace) connect with :attr:`Libvirtd.uri` (the socket's path
as the host sees it); inside the namespace, with ``qemu:///system``.

QEMU runs as root without a security driver, dynamic ownership, cgroups or its own mount
namespace: test files live under /tmp/pytest-of-root, and libvirt must not relabel, chown
or hide them. The daemons' logs and QEMU's per-domain logs stay under ``state/log``.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node_agent.procfs import running

if TYPE_CHECKING:
    import libvirt

# The run directory holds the sockets: its host path must fit in a sockaddr_un (108 bytes),
# which a pytest tmp_path does not promise.
RUN_ROOT = Path("/run/mirrorpair-tests/libvirt")
URI_INSIDE = "qemu:///system"

QEMU_CONF = """\
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = []
cgroup_controllers = []
stdio_handler = "logd"
"""
# Root only, no polkit (none runs here).
LIBVIRTD_CONF = """\
unix_sock_rw_perms = "0700"
unix_sock_ro_perms = "0700"
unix_sock_admin_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""
VIRTLOGD_CONF = 'log_outputs = "3:file:/var/log/libvirt/virtlogd.log"\n'

# Each libvirt directory of the machine and the state subdirectory that hides it.
_BINDS = {
    "/etc/libvirt": "etc",
    "/var/lib/libvirt": "lib",
    "/var/cache/libvirt": "cache",
    "/var/log/libvirt": "log",
}
_GRACE_S = 10.0
# libvirt's QEMU driver resolves its compiled-in user and group (Debian: libvirt-qemu) before
# it reads qemu.conf, and fails where they do not exist: libvirt-daemon-system creates them,
# but installing it would also start a system libvirtd. Where they are missing, the daemons'
# namespace gets copies of /etc/passwd and /etc/group that have them; the machine's stay as
# they are.
QEMU_ACCOUNT = "libvirt-qemu"
# libvirtd probes QEMU's capabilities before its first domain (seconds under TCG) and caches
# them in /var/cache/libvirt/qemu/capabilities, keyed and checked by libvirt itself (QEMU's
# and libvirtd's binaries, the kernel...). Each test daemon has its own cache directory: it
# starts from the machine's copy of the files and gives back what it probed.
CAPS_SEED = Path(os.environ.get("MIRRORPAIR_TEST_CACHE", "/var/cache/mirrorpair-tests"),
                 "libvirt-qemu-capabilities")  # fmt: skip
_CAPS = Path("cache/qemu/capabilities")


class LibvirtdError(RuntimeError):
    pass


def _silence_libvirt() -> None:
    """libvirt-python prints every error to stderr by default, expected ones included."""
    import libvirt

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _copy_xml(src: Path, dst: Path) -> None:
    """Copy src/*.xml into dst, each file whole (another session may read dst meanwhile)."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*.xml"):
        tmp = dst / f".{f.name}.{os.getpid()}"
        shutil.copyfile(f, tmp)
        os.replace(tmp, dst / f.name)


def cleanup_stale() -> None:
    """Remove the run directories of test daemons that are gone (a crashed session); a
    running one (another session's) is left alone."""
    for run in RUN_ROOT.glob("*"):
        pid = _read_pid(run / "libvirtd.pid")
        with contextlib.suppress(OSError):
            if pid and running(pid) and Path(f"/proc/{pid}/comm").read_text().strip() == "libvirtd":
                continue
        if time.time() - run.stat().st_mtime > 60:  # not one being started right now
            shutil.rmtree(run, ignore_errors=True)


class Libvirtd:
    """libvirtd + virtlogd with private directories. Use as a context manager or call
    :meth:`start` and :meth:`stop` (stop destroys every domain first: QEMU outlives
    libvirtd)."""

    def __init__(self, state: Path, *, enter: Sequence[str] | None = None,
                 name: str = "local") -> None:  # fmt: skip
        self.state = state
        self.name = name
        self._enter = list(enter) if enter is not None else None
        RUN_ROOT.mkdir(parents=True, exist_ok=True)
        cleanup_stale()
        self.run = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=RUN_ROOT))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        """The URI for a client in any namespace (the socket's host path)."""
        return f"qemu+unix:///system?socket={self.run}/libvirt-sock"

    @property
    def log_dir(self) -> Path:
        """libvirtd.log, virtlogd.log, daemons.out, and qemu/NAME.log for each domain."""
        return self.state / "log"

    def enter(self) -> list[str]:
        """The argv prefix that runs a command in this daemon's namespaces."""
        if self._enter is not None:
            return list(self._enter)
        if self.proc is None:
            raise LibvirtdError("not started")
        return ["nsenter", f"--mount=/proc/{self.proc.pid}/ns/mnt", "--"]

    def _account_files(self) -> dict[str, Path]:
        """/etc/passwd and /etc/group copies with the QEMU driver's account, if needed."""
        try:
            pwd.getpwnam(QEMU_ACCOUNT)
            grp.getgrnam(QEMU_ACCOUNT)
            return {}
        except KeyError:
            pass
        used = {p.pw_uid for p in pwd.getpwall()} | {g.gr_gid for g in grp.getgrall()}
        ident = next(i for i in range(64055, 65000) if i not in used)
        passwd = self.state / "passwd"
        group = self.state / "group"
        passwd.write_text(Path("/etc/passwd").read_text().rstrip("\n") + f"\n{QEMU_ACCOUNT}:x:"
                          f"{ident}:{ident}::/var/lib/libvirt:/usr/sbin/nologin\n")  # fmt: skip
        group.write_text(Path("/etc/group").read_text().rstrip("\n") + f"\n{QEMU_ACCOUNT}:x:"
                         f"{ident}:\n")  # fmt: skip
        return {"/etc/passwd": passwd, "/etc/group": group}

    def _script(self) -> str:
        binds = {**{d: self.state / sub for d, sub in _BINDS.items()}, "/run/libvirt": self.run}
        lines = ["set -e"]
        for target, source in binds.items():
            # A restart meets the previous binds in a site server's namespace: replace them.
            lines.append(f"mkdir -p {target}; while mountpoint -q {target}; do "
                         f"umount -l {target}; done; mount --bind {source} {target}")  # fmt: skip
        for target, source in self._account_files().items():
            lines.append(f"mount --bind {source} {target}")
        lines.append("virtlogd -p /run/libvirt/virtlogd.pid &")
        lines.append("exec libvirtd -p /run/libvirt/libvirtd.pid")
        return "\n".join(lines)

    def start(self, timeout: float = 60.0) -> Libvirtd:
        """Start both daemons and return once libvirtd answers on its socket."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.run.mkdir(parents=True, exist_ok=True)
        for sub in _BINDS.values():
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        _copy_xml(CAPS_SEED, self.state / _CAPS)
        etc = self.state / "etc"
        (etc / "qemu.conf").write_text(QEMU_CONF)
        (etc / "libvirtd.conf").write_text(LIBVIRTD_CONF)
        (etc / "virtlogd.conf").write_text(VIRTLOGD_CONF)
        prefix = self._enter if self._enter is not None else [
            "unshare", "--mount", "--propagation", "slave", "--"]  # fmt: skip
        with open(self.log_dir / "daemons.out", "ab") as out:
            # nsenter and unshare exec: the child's pid is the shell's, then libvirtd's.
            argv = [*prefix, "sh", "-c", self._script()]
            self.proc = subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        import libvirt

        _silence_libvirt()
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise LibvirtdError(f"libvirtd {self.name} exited ({self.proc.returncode})\n"
                                    f"{self.tail()}")  # fmt: skip
            if (self.run / "libvirt-sock").exists():
                with contextlib.suppress(libvirt.libvirtError):
                    libvirt.open(self.uri).close()
                    return
            if time.monotonic() > deadline:
                raise LibvirtdError(f"libvirtd {self.name} not ready in {timeout}s\n{self.tail()}")
            time.sleep(0.05)

    def connect(self) -> libvirt.virConnect:
        """A new connection from this process (close it, or let it be collected)."""
        import libvirt

        _silence_libvirt()
        return libvirt.open(self.uri)

    def virsh(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """virsh inside the daemon's namespace, on ``qemu:///system`` as the agent will."""
        argv = [*self.enter(), "virsh", "-c", URI_INSIDE, *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    def qemu_pids(self) -> dict[str, int]:
        """Domain name -> QEMU pid, from the pid files libvirtd keeps for running domains."""
        pids = {}
        for f in (self.run / "qemu").glob("*.pid"):
            pid = _read_pid(f)
            with contextlib.suppress(OSError):  # the pid must still be that QEMU's
                if pid and running(pid) and b"qemu" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    pids[f.stem] = pid
        return pids

    def kill_qemu(self, name: str) -> int:
        """SIGKILL the domain's QEMU (the guest dies as in a power loss; libvirtd sees it
        end). Returns the pid it killed."""
        pid = self.qemu_pids()[name]
        os.kill(pid, signal.SIGKILL)
        return pid

    def domain_running(self, name: str) -> bool:
        """The domain exists and runs (a transient domain that ended no longer exists)."""
        import libvirt

        conn = self.connect()
        try:
            return bool(conn.lookupByName(name).isActive())
        except libvirt.libvirtError:
            return False
        finally:
            conn.close()

    def wait_gone(self, name: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.domain_running(name):
            if time.monotonic() > deadline:
                raise LibvirtdError(f"domain {name} still runs after {timeout}s")
            time.sleep(0.05)

    def tail(self, lines: int = 30) -> str:
        parts = []
        for name in ("daemons.out", "libvirtd.log"):
            with contextlib.suppress(OSError):
                text = (self.log_dir / name).read_text(errors="replace").splitlines()
                parts += [f"--- {self.name} {name}:", *text[-lines:]]
        return "\n".join(parts)

    def stop(self) -> None:
        """Destroy every domain, stop libvirtd and virtlogd, kill any QEMU left. Idempotent."""
        if self.proc is None:
            return
        qemus = self.qemu_pids()
        if self.proc.poll() is None:
            import libvirt

            with contextlib.suppress(libvirt.libvirtError):
                conn = self.connect()
                for dom in conn.listAllDomains():
                    with contextlib.suppress(libvirt.libvirtError):
                        dom.destroy()
                conn.close()
        virtlogd = _read_pid(self.run / "virtlogd.pid")
        self._terminate(self.proc.pid)
        self.proc.wait()
        if virtlogd is not None:
            self._terminate(virtlogd)
        for pid in qemus.values():  # a QEMU whose libvirtd died before it could destroy it
            self._terminate(pid, signal.SIGKILL)
        self.proc = None
        shutil.rmtree(self.run, ignore_errors=True)
        _copy_xml(self.state / _CAPS, CAPS_SEED)

    @staticmethod
    def _terminate(pid: int, sig: int = signal.SIGTERM) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + _GRACE_S
        while running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if running(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def __enter__(self) -> Libvirtd:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
