"""The test guest's initramfs: a gzipped cpio ("newc") archive written here in Python, so
that building it needs neither cpio nor root-owned device nodes on the host.

Contents: ``/init`` (guest_init.sh), a static busybox as ``/bin/busybox``, the kernel
modules the guest needs (and their dependencies, in load order, listed in ``/etc/modules``),
``/dev/console`` (the kernel opens it for init before any devtmpfs is mounted) and, where
the host has it, the QEMU guest agent with the host's shared libraries it links to.
"""

from __future__ import annotations

import gzip
import io
import stat
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

# What the Debian cloud kernel builds as modules and the guest needs: the virtio disk
# (virtio_pci finds the device), the ACPI power button and evdev to read its events, the
# virtio serial ports the QEMU guest agent talks through.
GUEST_MODULES = ("virtio_pci", "virtio_blk", "button", "evdev", "virtio_console")


class _Cpio:
    """A minimal newc writer (the format the kernel unpacks; see the kernel's
    Documentation/driver-api/early-userspace/buffer-format.rst)."""

    def __init__(self) -> None:
        self.out = io.BytesIO()
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)):
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1],
                  len(name) + 1, 0]  # fmt: skip
        self.ino += 1
        self.out.write(b"070701" + b"".join(b"%08X" % f for f in fields))
        self.out.write(name.encode() + b"\0")
        self._pad()
        self.out.write(data)
        self._pad()

    def _pad(self) -> None:
        self.out.write(b"\0" * (-self.out.tell() % 4))

    def dir(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def chardev(self, name: str, major: int, minor: int) -> None:
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.out.getvalue()


def module_depends(ko: Path) -> list[str]:
    """The ``depends=`` of a module's .modinfo section (what depmod would read)."""
    data = ko.read_bytes()
    at = data.find(b"\0depends=")
    if at < 0:
        return []
    end = data.index(b"\0", at + 1)
    value = data[at + len(b"\0depends=") : end].decode()
    return [name for name in value.split(",") if name]


def resolve_modules(tree: Path, wanted: Iterable[str]) -> list[Path]:
    """The .ko files of ``wanted`` and their dependencies under ``tree`` (a kernel's
    lib/modules/VERSION), dependencies first."""
    index = {ko.stem.replace("-", "_"): ko for ko in tree.rglob("*.ko")}
    order: list[Path] = []

    def visit(name: str) -> None:
        ko = index.get(name.replace("-", "_"))
        if ko is None:
            raise FileNotFoundError(f"kernel module {name} not found under {tree}")
        if ko in order:
            return
        for dep in module_depends(ko):
            visit(dep)
        order.append(ko)

    for name in wanted:
        visit(name)
    return order


def shared_libraries(program: Path) -> list[Path]:
    """The shared libraries (and the loader) the host's ``ldd`` names for ``program``."""
    out = subprocess.run(["ldd", str(program)], capture_output=True, text=True, check=True,
                         timeout=30).stdout  # fmt: skip
    libs = []
    for line in out.splitlines():
        # "libx.so.1 => /lib/x86_64-linux-gnu/libx.so.1 (0x...)" or "/lib64/ld-linux... (0x...)"
        words = line.split()
        path = words[2] if len(words) > 2 and words[1] == "=>" else words[0] if words else ""
        if path.startswith("/"):
            libs.append(Path(path))
    return libs


def build_initramfs(
    init: bytes, busybox: Path, modules: list[Path], programs: Sequence[Path] = ()
) -> bytes:
    """The gzipped archive (the kernel unpacks gzip; a few MB at most). ``programs`` go to
    /bin with their libraries at the paths the host has them (a dynamic program finds them
    there)."""
    cpio = _Cpio()
    dirs = ["bin", "dev", "etc", "lib", "lib/modules", "proc", "sys", "tmp"]
    libs = sorted({lib for prog in programs for lib in shared_libraries(prog)})
    for lib in libs:
        parts = lib.parent.relative_to("/").parts
        dirs += ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for d in dict.fromkeys(dirs):
        cpio.dir(d)
    cpio.chardev("dev/console", 5, 1)
    cpio.file("init", init, 0o755)
    cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
    for prog in programs:
        cpio.file(f"bin/{prog.name}", prog.read_bytes(), 0o755)
    for lib in libs:
        cpio.file(str(lib.relative_to("/")), lib.read_bytes(), 0o755)
    for ko in modules:
        cpio.file(f"lib/modules/{ko.stem}.ko", ko.read_bytes())
    cpio.file("etc/modules", "".join(f"{ko.stem}\n" for ko in modules).encode())
    # mtime=0: the same inputs give the same bytes.
    return gzip.compress(cpio.finish(), compresslevel=9, mtime=0)
