"""`mirrorpair demo` as a real process for tests: its output collected line by line, its
printed command lines found and run as an admin would paste them (bash -c)."""

from __future__ import annotations

import contextlib
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MIRRORPAIR = str(Path(sys.executable).parent / "mirrorpair")


def mounts_under(top: Path) -> list[str]:
    prefix = str(top.resolve()) + "/"
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        points = [line.split()[4].replace("\\040", " ") for line in f]
    return [p for p in points if p.startswith(prefix)]


class Demo:
    def __init__(self, root: Path, env: dict[str, str], *args: str,
                 prefix: list[str] | None = None) -> None:  # fmt: skip
        """``prefix``: run it through that (e.g. nsenter into a test libvirtd's mounts)."""
        cmd = [*(prefix or []), sys.executable, "-m", "node_agent.cli.main", "demo", "--dir",
               str(root), *args]  # fmt: skip
        self.root = root
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)  # fmt: skip
        self._lines: queue.Queue[str] = queue.Queue()
        self.out: list[str] = []
        threading.Thread(target=lambda: [self._lines.put(x) for x in self.proc.stdout],  # type: ignore[union-attr]
                         daemon=True).start()  # fmt: skip

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.out):
            assert time.monotonic() < deadline, f"no {text!r} in:\n{''.join(self.out)}"
            assert self.proc.poll() is None or not self._lines.empty(), "".join(self.out)
            with contextlib.suppress(queue.Empty):
                self.out.append(self._lines.get(timeout=0.5))

    def line(self, ending: str) -> str:
        """The printed command line (a full path first) that ends with ``ending``."""
        for line in self.out:
            text = line.strip()
            if text.startswith(MIRRORPAIR + " ") and text.endswith(ending):
                return text
        raise AssertionError(f"no command line ending {ending!r} in:\n{''.join(self.out)}")

    def line_after(self, intro: str) -> str:
        """The line printed right after the one containing ``intro``, stripped."""
        for i, line in enumerate(self.out[:-1]):
            if intro in line:
                return self.out[i + 1].strip()
        raise AssertionError(f"no {intro!r} in:\n{''.join(self.out)}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        assert self.proc.returncode == 0, "".join(self.out)
        assert not self.root.exists(), list(self.root.rglob("*"))
        assert mounts_under(self.root.parent) == []
        left = subprocess.run(["pgrep", "-f", str(self.root)], capture_output=True, text=True)
        assert left.stdout == "", f"left running: {left.stdout}"


def paste(line: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a printed line as pasted into a shell (from another directory, no terminal)."""
    return subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=timeout,
                          cwd="/", stdin=subprocess.DEVNULL)  # fmt: skip
