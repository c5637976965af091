"""What /proc says of a process (one reading for the agent, its data planes, the demo and
the tests). The command name in /proc/PID/stat may hold spaces and parentheses: the fields
are split after the last ')'."""

from __future__ import annotations

from pathlib import Path


def stat_fields(pid: int | None) -> list[str] | None:
    """/proc/PID/stat after "pid (comm)": [state, ppid, ...]; None when there is no such
    process (or it was reaped meanwhile)."""
    if pid is None:
        return None
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def process_state(pid: int | None) -> str | None:
    """The state letter (R, S, D, Z, ...), None when there is no such process."""
    fields = stat_fields(pid)
    return fields[0] if fields else None


def running(pid: int | None) -> bool:
    """Exists and has not exited (a zombie has: only its parent has not reaped it yet)."""
    return process_state(pid) not in (None, "Z", "X")


def parent_of(pid: int) -> int:
    fields = stat_fields(pid)
    return int(fields[1]) if fields else 0


def start_time(pid: int) -> int | None:
    """Clock ticks after boot (field 22): tells a process from a later one with its pid."""
    fields = stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def argv(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []
