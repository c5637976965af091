"""keep_large_buffers(): a burst of freed 1 MiB buffers is reused, not faulted in again.

Each case runs in a fresh interpreter (the thresholds are process-wide), allocating the
pattern of the data path: 32 buffers of 1 MiB, all freed, twenty times over."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BURSTS = textwrap.dedent(
    """
    import resource, sys
    from node_agent.malloc_tuning import keep_large_buffers
    if sys.argv[1] == "tuned":
        assert keep_large_buffers()
    t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        bufs = [bytearray(1 << 20) for _ in range(32)]
        del bufs
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - t0) / 640)
    """
)


def faults_per_mib(how: str) -> float:
    out = subprocess.run([sys.executable, "-c", BURSTS, how], check=True, capture_output=True,
                         text=True)  # fmt: skip
    return float(out.stdout)


def test_tuned_bursts_reuse_their_memory() -> None:
    default, tuned = faults_per_mib("default"), faults_per_mib("tuned")
    assert default > 128, f"the default thresholds should fault pages in again: {default}"
    assert tuned < 32, f"freed buffers were handed back to the kernel: {tuned} faults/MiB"
