"""Keep freed 1 MiB buffers in the process for reuse (glibc malloc tuning).

Each replicated write allocates buffers of about 1 MiB: the FUSE write's bytes on the
primary, the frame buffer on the secondary. When up to the stream's budget (64 MiB) of
them is freed together, glibc's default thresholds hand the memory back to the kernel,
so the next burst gets fresh pages: a page fault and a page zeroing per 4 KiB, measured
at 80-100 faults per MiB replicated on each node. Fixed thresholds above the budgets
keep that memory in the heap; the process then holds at most its peak use.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 8 << 20  # above the largest frame (wire.MAX_WRITE_DATA, 2 MiB)
TRIM_THRESHOLD = 128 << 20  # the sender's and the receiver's 64 MiB budgets


def keep_large_buffers() -> bool:
    """Set the thresholds for this process; False where malloc is not glibc's."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        log.info("no glibc mallopt here: large buffers use the default malloc thresholds")
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
