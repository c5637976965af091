"""The guest's serial console log (a file QEMU appends to across boots): what the guest
reported, and waiting for it.

    log = ConsoleLog(vm.console_log)
    mark = log.mark()                       # read only what comes after this point
    log.wait_for(r"^LAST (\\d+)$", since=mark)
    log.wait_rec(50, since=mark)            # "REC 50" or later arrived
    log.last_rec(since=mark)                # the highest REC reported
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

_REC = re.compile(r"^REC (\d+)$", re.M)
# Terminal control sequences (CSI): UEFI firmware clears the screen on the serial port
# before the kernel starts, with no newline after, so the guest's first line follows them.
_CSI = re.compile(r"\x1b\[[0-9;=?]*[A-Za-z]")


class ConsoleTimeout(AssertionError):
    pass


class ConsoleLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def text(self, since: int = 0) -> str:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(since)
                # The tty turns "\n" into "\r\n": give patterns plain lines.
                text = fh.read().decode(errors="replace").replace("\r\n", "\n")
                return _CSI.sub("", text)
        except FileNotFoundError:
            return ""

    def mark(self) -> int:
        """The log's current end: pass it as ``since`` to look at later output only."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def recs(self, since: int = 0) -> list[int]:
        return [int(n) for n in _REC.findall(self.text(since))]

    def last_rec(self, since: int = 0) -> int:
        """The highest record reported (0 if none)."""
        return max(self.recs(since), default=0)

    def wait_for(self, pattern: str, *, since: int = 0, timeout: float = 60.0,
                 alive: Callable[[], bool] | None = None) -> re.Match[str]:  # fmt: skip
        """The first match of ``pattern`` (a multi-line regex) in the log after ``since``.
        ``alive`` (e.g. "the domain still runs") ends the wait early when false."""
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.text(since))
            if m:
                return m
            if alive is not None and not alive():
                raise ConsoleTimeout(f"guest stopped before {pattern!r}\n{self.tail(since)}")
            if time.monotonic() > deadline:
                raise ConsoleTimeout(f"no {pattern!r} within {timeout}s\n{self.tail(since)}")
            time.sleep(0.05)

    def wait_rec(self, n: int, *, since: int = 0, timeout: float = 60.0,
                 alive: Callable[[], bool] | None = None) -> int:  # fmt: skip
        """Wait until a record >= ``n`` is reported; return the highest reported."""
        deadline = time.monotonic() + timeout
        while self.last_rec(since) < n:
            if alive is not None and not alive():
                raise ConsoleTimeout(f"guest stopped before REC {n}\n{self.tail(since)}")
            if time.monotonic() > deadline:
                raise ConsoleTimeout(f"no REC {n} within {timeout}s\n{self.tail(since)}")
            time.sleep(0.05)
        return self.last_rec(since)

    def last_boot_value(self, since: int = 0) -> int | None:
        """The N of the latest ``LAST N`` line after ``since``."""
        found = re.findall(r"^LAST (\d+)$", self.text(since), re.M)
        return int(found[-1]) if found else None

    def tail(self, since: int = 0, lines: int = 20) -> str:
        return "\n".join(["--- console (last lines):", *self.text(since).splitlines()[-lines:]])
