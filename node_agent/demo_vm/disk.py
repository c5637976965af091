"""Disk images through qemu-img: create, check, and read as raw bytes."""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

FORMATS = ("qcow2", "raw")


class DiskError(RuntimeError):
    pass


def _qemu_img(*args: str | Path, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(["qemu-img", *map(str, args)], capture_output=True, text=True,
                       timeout=300)  # fmt: skip
    if r.returncode not in ok:
        raise DiskError(f"qemu-img {' '.join(map(str, args))} ({r.returncode}): {r.stderr}")
    return r


def create_disk(path: Path, size_mib: int = 64, fmt: str = "qcow2") -> Path:
    """A new, empty (all zero) image. qcow2 allocates as the guest writes, so its metadata
    is updated under the guest's writes: what ``qemu-img check`` then verifies."""
    if fmt not in FORMATS:
        raise ValueError(f"disk format must be one of {FORMATS}, not {fmt!r}")
    _qemu_img("create", "-q", "-f", fmt, path, f"{size_mib}M")
    return path


@dataclass(frozen=True)
class DiskCheck:
    format: str
    supported: bool  # raw images have no metadata to check
    errors: int  # corruptions and check errors
    leaks: int  # leaked clusters (space lost, data intact)
    report: dict[str, object]

    @property
    def clean(self) -> bool:
        return self.errors == 0 and self.leaks == 0


def check_disk(path: Path, *, force_share: bool = False) -> DiskCheck:
    """``qemu-img check`` of the image. A running QEMU holds a lock on it: ``force_share``
    checks anyway (the result may then be stale)."""
    info = json.loads(_qemu_img("info", "--output=json", *(["-U"] * force_share), path).stdout)
    fmt = info["format"]
    # Exit codes: 0 clean, 2 corruptions, 3 leaks, 63 the format has no checks.
    r = _qemu_img("check", "--output=json", *(["-U"] * force_share), "-f", fmt, path,
                  ok=(0, 2, 3, 63))  # fmt: skip
    if r.returncode == 63:
        return DiskCheck(fmt, False, 0, 0, {})
    report = json.loads(r.stdout)
    errors = int(report.get("corruptions", 0)) + int(report.get("check-errors", 0))
    return DiskCheck(fmt, True, errors, int(report.get("leaks", 0)), report)


def disk_bytes(path: Path) -> bytes:
    """The guest-visible contents of the image (a qcow2 is converted to raw first)."""
    info = json.loads(_qemu_img("info", "--output=json", "-U", path).stdout)
    if info["format"] == "raw":
        return path.read_bytes()
    with tempfile.TemporaryDirectory(prefix="mp-disk-") as tmp:
        raw = Path(tmp) / "disk.raw"
        _qemu_img("convert", "-U", "-f", info["format"], "-O", "raw", path, raw)
        return raw.read_bytes()
