"""What /proc says of a process: running, a zombie, a data plane (one reading for the
supervisor, the client and the tests)."""

from __future__ import annotations

from pathlib import Path

DATA_PLANE_MODULE = b"node_agent.dataplane"


def process_state(pid: int | None) -> str | None:
    """The state letter of /proc/PID/stat (R, S, D, Z, ...), None when there is no such
    process. The command name may hold spaces and parentheses: split after the last ')'."""
    if pid is None:
        return None
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def running(pid: int | None) -> bool:
    """Exists and has not exited (a zombie has: only its parent has not reaped it yet)."""
    return process_state(pid) not in (None, "Z", "X")


def _argv(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def is_data_plane(pid: int | None) -> bool:
    """A running data plane (a pid file may name a pid reused since by another process)."""
    return pid is not None and running(pid) and DATA_PLANE_MODULE in _argv(pid)


def data_planes_under(folder: str) -> list[int]:
    """Running data planes whose command line names a path under ``folder``."""
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    return [
        pid for pid in pids if is_data_plane(pid)
        and any(a.decode(errors="replace").startswith(folder) for a in _argv(pid))
    ]  # fmt: skip
