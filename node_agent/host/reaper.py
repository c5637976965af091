"""The agent as child subreaper, and the reaping of the orphans that brings (issue 14).

``become_subreaper`` is prctl(PR_SET_CHILD_SUBREAPER) through ctypes. ``ChildReaper``
looks for zombie children once a second from the event loop and reaps those that
``OrphanPlan`` says no one owns. It never calls waitpid(-1): the asyncio child
watcher and the threads waiting for the data planes keep their children.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from node_agent import procfs
from node_agent.host.orphans import OrphanPlan

log = logging.getLogger(__name__)

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
REAP_EVERY_S = 1.0


def become_subreaper() -> bool:
    """Orphaned descendants are reparented to this process rather than to init."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0:
            return True
        err = ctypes.get_errno()
        log.warning("cannot become a child subreaper: %s", os.strerror(err))
    except (OSError, AttributeError) as e:
        log.warning("cannot become a child subreaper: %s", e)
    return False


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a process, None if gone."""
    fields = procfs.stat_fields(pid)
    return (fields[0], int(fields[19])) if fields and len(fields) > 19 else None


def children(pid: int | None = None) -> set[int]:
    """This process's children (of every thread: a thread's children are ours too)."""
    pid = pid or os.getpid()
    found: set[int] = set()
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                found.update(int(c) for c in (task / "children").read_text().split())
    return found


def zombie_children() -> dict[int, int]:
    """pid -> start time of each zombie child (one cheap waitid first: usually none)."""
    try:
        if os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            return {}
    except ChildProcessError:
        return {}
    zombies = {}
    for pid in children():
        st = _stat(pid)
        if st is not None and st[0] == "Z":
            zombies[pid] = st[1]
    return zombies


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.WEXITSTATUS(status)}"


class ChildReaper:
    """Reaps orphaned zombie children from a loop callback every REAP_EVERY_S."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.plan = OrphanPlan()
        self._clock = clock
        self._handle: asyncio.TimerHandle | None = None
        self.reaped = 0

    def start(self) -> None:
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(REAP_EVERY_S, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def reap_once(self) -> list[int]:
        zombies = zombie_children()
        done = []
        for pid in self.plan.due(zombies, self._clock()):
            if _stat(pid) != ("Z", zombies[pid]):
                continue  # reaped by its owner meanwhile (and the pid perhaps reused)
            name = _comm(pid)
            try:
                got, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            if got == pid:
                done.append(pid)
                self.reaped += 1
                log.info("reaped orphaned process %d (%s): %s", pid, name,
                         describe_status(status))  # fmt: skip
        return done

    def _tick(self) -> None:
        try:
            self.reap_once()
        except Exception:  # reaping must go on whatever one pass met
            log.exception("reaping orphaned processes failed")
        finally:
            self._handle = asyncio.get_running_loop().call_later(REAP_EVERY_S, self._tick)
