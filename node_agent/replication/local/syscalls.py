"""Linux calls Python's os module lacks (renameat2, fallocate with any mode, syncfs,
sync_file_range),
through ctypes; a failure raises OSError with the errno, as os does.
"""

from __future__ import annotations

import ctypes
import os

AT_FDCWD = -100

_libc = ctypes.CDLL(None, use_errno=True)
_libc.renameat2.argtypes = [
    ctypes.c_int,
    ctypes.c_char_p,
    ctypes.c_int,
    ctypes.c_char_p,
    ctypes.c_uint,
]
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_libc.syncfs.argtypes = [ctypes.c_int]
_libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
SYNC_FILE_RANGE_WRITE = 2


def _raise_errno(what: str) -> None:
    err = ctypes.get_errno()
    raise OSError(err, f"{what}: {os.strerror(err)}")


def renameat2(
    src_dir_fd: int, src: str | bytes, dst_dir_fd: int, dst: str | bytes, flags: int
) -> None:
    """renameat2(2) (RENAME_NOREPLACE=1, RENAME_EXCHANGE=2); Python has no wrapper."""
    if _libc.renameat2(src_dir_fd, os.fsencode(src), dst_dir_fd, os.fsencode(dst), flags):
        _raise_errno("renameat2")


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    """fallocate(2) with any mode (punch hole, zero range, keep size...)."""
    if _libc.fallocate(fd, mode, offset, length):
        _raise_errno("fallocate")


def syncfs(fd: int) -> None:
    if _libc.syncfs(fd):
        _raise_errno("syncfs")


def sync_file_range(fd: int, offset: int, length: int, flags: int) -> None:
    if _libc.sync_file_range(fd, offset, length, flags):
        _raise_errno("sync_file_range")
