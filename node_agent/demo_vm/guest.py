"""The demo's and the tests' guest: Debian's cloud kernel and a busybox initramfs whose init
writes numbered, durable records to its virtio disk and reports each on the serial console
(guest_init.sh says what it does and how the command line steers it).

Built once per machine and cached under :data:`CACHE` (``MIRRORPAIR_GUEST_CACHE`` overrides
``/var/cache/mirrorpair``), keyed by the kernel package's version, busybox-static's
version and a hash of the init script and of the builder: a new kernel, a new busybox or an
edited init gives a new guest, anything else reuses it. The kernel package is fetched with
``apt-get download`` and unpacked with ``dpkg-deb -x`` into a scratch directory, never
installed (installing it would run this host's initramfs hooks).

    guest = build_guest()                      # Guest(kernel=..., initrd=..., key=...)
    guest.cmdline(records=100, delay=0.05)     # "console=ttyS0 ... mp.mode=records ..."

``python -m node_agent.demo_vm.guest`` builds it (or finds it) and prints the paths.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from node_agent.demo_vm.initramfs import GUEST_MODULES, build_initramfs, resolve_modules

CACHE = Path(os.environ.get("MIRRORPAIR_GUEST_CACHE", "/var/cache/mirrorpair")) / "guest"
KERNEL_META = "linux-image-cloud-amd64"
BUSYBOX = Path("/bin/busybox")
QEMU_GA = Path("/usr/sbin/qemu-ga")  # the guest agent, where qemu-guest-agent is installed
INIT = Path(__file__).with_name("guest_init.sh")
_BUILDERS = (Path(__file__), Path(__file__).with_name("initramfs.py"))

# quiet: the kernel's boot messages cost time on an emulated UART. panic=-1: a panic
# (init died) reboots at once, which the domain turns into a stop (on_reboot=destroy).
# cryptomgr.notests: the crypto self-tests cost almost a second of an emulated boot.
BASE_CMDLINE = "console=ttyS0 quiet panic=-1 cryptomgr.notests"


@dataclass(frozen=True)
class Guest:
    kernel: Path
    initrd: Path
    key: str  # the cache key: kernel version, busybox version, builder hash

    @property
    def has_guest_agent(self) -> bool:
        """The initramfs carries qemu-ga (built where qemu-guest-agent is installed)."""
        with contextlib.suppress(OSError, ValueError):
            info = json.loads((self.initrd.parent / "info.json").read_text())
            return "qemu-ga" in info.get("programs", [])
        return False

    def cmdline(
        self,
        mode: str = "records",
        *,
        records: int | None = None,
        delay: float | None = None,
        poweroff: float | None = None,
        mb: int | None = None,
        syncs: int | None = None,
    ) -> str:
        """The kernel command line for a mode (``records``, ``ready`` or ``bench``) and its
        options (guest_init.sh)."""
        if mode not in ("records", "ready", "bench"):
            raise ValueError(f"unknown guest mode {mode!r}")
        parts = [BASE_CMDLINE, f"mp.mode={mode}"]
        options = (("records", records), ("delay", delay), ("poweroff", poweroff), ("mb", mb),
                   ("syncs", syncs))  # fmt: skip
        for name, value in options:
            if value is not None:
                parts.append(f"mp.{name}={value}")
        return " ".join(parts)


class GuestBuildError(RuntimeError):
    pass


def _run(*argv: str, cwd: Path | None = None) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=600)
    if r.returncode != 0:
        raise GuestBuildError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def _apt_lists_stamp() -> float:
    lists = Path("/var/lib/apt/lists")
    return max((f.stat().st_mtime for f in lists.glob("*Packages*")), default=0.0)


def kernel_package() -> tuple[str, str]:
    """(package, version) of the kernel image the cloud metapackage points to now (Debian's
    kernel metapackages carry the version of the image they depend on).

    apt-cache takes seconds here, so the answer is kept beside the cache until the package
    lists change."""
    stamp, memo = _apt_lists_stamp(), CACHE / "kernel-package.json"
    with contextlib.suppress(OSError, ValueError, KeyError):
        known = json.loads(memo.read_text())
        if known["lists"] == stamp:
            return known["package"], known["version"]
    text = _run("apt-cache", "show", "--no-all-versions", KERNEL_META)
    dep = re.search(r"^Depends:.*?(linux-image-[0-9][^\s,]*-cloud-amd64)", text, re.M)
    version = re.search(r"^Version: (\S+)", text, re.M)
    if not dep or not version:
        raise GuestBuildError(f"apt-cache show {KERNEL_META}: no kernel (run apt-get update)")
    memo.write_text(json.dumps({"lists": stamp, "package": dep[1], "version": version[1]}))
    return dep[1], version[1]


def busybox_version() -> str:
    out = _run("dpkg-query", "-W", "-f=${Status} ${Version}", "busybox-static")
    status, _, version = out.rpartition(" ")
    if not status.endswith("installed") or not BUSYBOX.is_file():
        raise GuestBuildError("busybox-static is not installed (installer/dev setup)")
    return version


def guest_agent_version() -> str:
    """qemu-guest-agent's version, "none" where it is not installed (the guest then has no
    agent: a vm module with guest_agent = true cannot use it)."""
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status} ${Version}", "qemu-guest-agent"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    status, _, version = r.stdout.rpartition(" ")
    return version if status.endswith("installed") and QEMU_GA.is_file() else "none"


def _builder_hash() -> str:
    h = hashlib.sha256(INIT.read_bytes())
    for path in _BUILDERS:
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


class _DownloadError(GuestBuildError):
    pass


def _download_kernel(package: str, version: str, into: Path) -> Path:
    try:
        _run("apt-get", "download", "-q", f"{package}={version}", cwd=into)
    except GuestBuildError as e:
        raise _DownloadError(str(e)) from None
    return next(into.glob("linux-image-*.deb"))


def _build(dest: Path, package: str, version: str) -> None:
    with tempfile.TemporaryDirectory(prefix="mp-guest-") as tmp:
        scratch = Path(tmp)
        deb = _download_kernel(package, version, scratch)
        root = scratch / "root"
        _run("dpkg-deb", "-x", str(deb), str(root))
        kernels = sorted((root / "boot").glob("vmlinuz-*"))
        if not kernels:
            raise GuestBuildError(f"{deb.name} holds no /boot/vmlinuz-*")
        release = kernels[0].name.removeprefix("vmlinuz-")
        modules = resolve_modules(root / "lib" / "modules" / release, GUEST_MODULES)
        programs = [QEMU_GA] if QEMU_GA.is_file() else []
        initrd = build_initramfs(INIT.read_bytes(), BUSYBOX, modules, programs)
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=dest.parent))
        shutil.copyfile(kernels[0], work / "vmlinuz")
        (work / "initrd.img").write_bytes(initrd)
        info = {"kernel": f"{package}={version}", "release": release,
                "modules": [m.stem for m in modules], "initrd_bytes": len(initrd),
                "programs": [p.name for p in programs]}  # fmt: skip
        (work / "info.json").write_text(json.dumps(info, indent=1) + "\n")
        os.replace(work, dest)  # a guest directory is complete or absent


def _cached(key: str | None) -> Path | None:
    if key is not None:
        path = CACHE / key
        return path if (path / "initrd.img").is_file() else None
    found = sorted((p for p in CACHE.glob("*") if (p / "initrd.img").is_file()),
                   key=lambda p: p.stat().st_mtime)  # fmt: skip
    return found[-1] if found else None


def build_guest() -> Guest:
    """The cached guest for this machine's current kernel and busybox, built if needed.

    Without a usable package list (apt-cache cannot name the kernel) the newest cached
    guest of the same builder is used, if any. An outdated list can name a kernel the
    archive no longer has (security updates replace kernels): then it is refreshed once."""
    CACHE.mkdir(parents=True, exist_ok=True)
    builder = _builder_hash()
    for attempt in range(2):
        try:
            package, version = kernel_package()
        except GuestBuildError:
            path = _cached(None)
            if path is None or not path.name.endswith(builder):
                raise
            return Guest(path / "vmlinuz", path / "initrd.img", path.name)
        key = f"{version}-bb{busybox_version()}-ga{guest_agent_version()}-{builder}"
        key = key.replace(":", "_").replace("+", "_")
        path = CACHE / key
        # One builder per machine at a time (another test session may be building it too).
        with open(CACHE / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if _cached(key) is None:
                with contextlib.suppress(FileNotFoundError):
                    shutil.rmtree(path)
                try:
                    _build(path, package, version)
                except _DownloadError:
                    if attempt:
                        raise
                    _run("apt-get", "update", "-q")
                    continue
        return Guest(path / "vmlinuz", path / "initrd.img", key)
    raise AssertionError("unreachable")


if __name__ == "__main__":
    g = build_guest()
    print(f"kernel {g.kernel} ({g.kernel.stat().st_size} bytes)")
    print(f"initrd {g.initrd} ({g.initrd.stat().st_size} bytes)")
    print(f"key    {g.key}")
    sys.exit(0)
