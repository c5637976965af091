"""The UEFI firmware the tests boot UEFI guests with: OVMF from Debian 13 (trixie).

Why not the machine's own: Debian 12's OVMF (2022.11, in /usr/share/OVMF) stops with an
invalid opcode exception (#UD) under QEMU's software emulation (TCG), the only way this
machine boots guests; trixie's (2025.02) boots under TCG. On a real KVM server one uses the
distribution's OVMF (package ``ovmf``); nothing here is for production.

Fetched once per machine and cached beside the test guest (same cache root as guest.py:
``MIRRORPAIR_GUEST_CACHE`` overrides ``/var/cache/mirrorpair``), under
``firmware/ovmf-<version>/``. The package is found through the archive's index, never by a
fixed file name (the archive replaces versions): ``main/binary-all/Packages.xz``'s ``ovmf``
stanza gives the .deb's path and SHA256, checked before it is unpacked. The index itself is
not checked against the signed ``InRelease`` (the mirror this machine reaches serves an
``InRelease`` whose hashes do not match its ``Packages.xz``): the checksum catches a broken
or truncated download, not a hostile mirror -- acceptable for test firmware.
Only ``OVMF_CODE_4M.fd`` (code, read only) and ``OVMF_VARS_4M.fd`` (the template each VM's
NVRAM starts as a copy of) are kept; the .deb is unpacked with ``dpkg-deb -x``, never
installed. A cached firmware is used without asking the network; delete the directory to
fetch the archive's current one.

    fw = uefi_firmware()      # Firmware(code=.../OVMF_CODE_4M.fd, vars_template=.../VARS)

``python -m node_agent.demo_vm.firmware`` fetches it (or finds it) and prints the paths.
"""

from __future__ import annotations

import fcntl
import hashlib
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from node_agent.demo_vm.guest import CACHE as GUEST_CACHE

CACHE = GUEST_CACHE.parent / "firmware"
MIRROR = os.environ.get("MIRRORPAIR_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE = "trixie"
PACKAGE = "ovmf"
INDEX = "main/binary-all/Packages.xz"  # ovmf is Architecture: all
CODE, VARS = "OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"  # 4 MiB flash, no Secure Boot, no SMM


@dataclass(frozen=True)
class Firmware:
    code: Path  # <loader readonly='yes' type='pflash'>
    vars_template: Path  # <nvram template=...>: a new VM's NVRAM starts as a copy


class FirmwareError(RuntimeError):
    """The firmware could not be fetched or checked; the message starts with the step that
    failed (network, index, checksum, unpack)."""


def _get(url: str, timeout: float = 120.0) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read()
    except (urllib.error.URLError, OSError) as e:
        raise FirmwareError(f"network: cannot download {url}: {e}") from None


def _check(data: bytes, sha256: str, what: str) -> None:
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise FirmwareError(f"checksum: {what} has SHA256 {got}, the index says {sha256}")


def package_stanza(packages: str, name: str = PACKAGE) -> dict[str, str]:
    """The fields of ``name``'s stanza in a Packages file (the newest if listed twice)."""
    best: dict[str, str] = {}
    for block in packages.split("\n\n"):
        if not block.startswith(f"Package: {name}\n"):
            continue
        fields = dict(re.findall(r"^([\w-]+): (.*)$", block, re.M))
        # One version per suite in practice; dpkg's ordering is not needed for that.
        if not best or fields.get("Version", "") > best.get("Version", ""):
            best = fields
    if not best or "Filename" not in best or "SHA256" not in best:
        raise FirmwareError(f"index: {SUITE}'s {INDEX} has no usable {name} stanza")
    return best


def _fetch(dest_root: Path) -> Path:
    index = _get(f"{MIRROR}/dists/{SUITE}/{INDEX}")
    try:
        packages = lzma.decompress(index).decode(errors="replace")
    except lzma.LZMAError as e:
        raise FirmwareError(f"index: {MIRROR}/dists/{SUITE}/{INDEX} is not xz: {e}") from None
    stanza = package_stanza(packages)
    dest = dest_root / f"ovmf-{stanza['Version']}".replace(":", "_").replace("+", "_")
    if _complete(dest):
        return dest
    deb = _get(f"{MIRROR}/{stanza['Filename']}", timeout=300)
    _check(deb, stanza["SHA256"], stanza["Filename"])
    with tempfile.TemporaryDirectory(prefix="mp-fw-") as tmp:
        (Path(tmp) / "ovmf.deb").write_bytes(deb)
        r = subprocess.run(["dpkg-deb", "-x", f"{tmp}/ovmf.deb", f"{tmp}/root"],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
        if r.returncode != 0:
            raise FirmwareError(f"unpack: dpkg-deb -x {stanza['Filename']}: {r.stderr.strip()}")
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=dest_root))
        work.chmod(0o755)  # mkdtemp makes it 0700: QEMU may run as another user
        for name in (CODE, VARS):
            src = Path(tmp) / "root/usr/share/OVMF" / name
            if not src.is_file():
                shutil.rmtree(work)
                raise FirmwareError(f"unpack: {stanza['Filename']} holds no {name}")
            shutil.copyfile(src, work / name)
        (work / "source").write_text(f"{MIRROR}/{stanza['Filename']} {stanza['SHA256']}\n")
        os.replace(work, dest)  # a firmware directory is complete or absent
    return dest


def _complete(path: Path) -> bool:
    return all((path / name).is_file() for name in (CODE, VARS))


def _newest_cached() -> Path | None:
    found = sorted((p for p in CACHE.glob("ovmf-*") if _complete(p)),
                   key=lambda p: p.stat().st_mtime)  # fmt: skip
    return found[-1] if found else None


def uefi_firmware() -> Firmware:
    """The cached test firmware, fetched (and checked) the first time."""
    CACHE.mkdir(parents=True, exist_ok=True)
    # One fetcher per machine at a time (another test session may be fetching it too).
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = _newest_cached() or _fetch(CACHE)
    return Firmware(path / CODE, path / VARS)


if __name__ == "__main__":
    fw = uefi_firmware()
    print(f"code {fw.code} ({fw.code.stat().st_size} bytes)")
    print(f"vars {fw.vars_template} ({fw.vars_template.stat().st_size} bytes)")
    sys.exit(0)
