"""What the data plane and upgrade tests on the two-server site share: an application
writing with fsync through a module's mount (what it was told is durable must be on the
secondary), and agents run from another tree of the code (another build, or the previous
release's: tests/integration/test_site_upgrade.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.integration.cluster_netns import REPO
from tests.integration.site import Site

# Appends numbered records, fsync after each, and prints a number once it is durable:
# what it printed was acknowledged to the application. Any error ends it (exit 1).
WRITER = r"""
import os, sys, time
path, stop = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
i = 0
while not os.path.exists(stop):
    i += 1
    try:
        os.write(fd, b"record %08d\n" % i)
        os.fsync(fd)
    except OSError as e:
        print("ERROR", i, e, flush=True)
        sys.exit(1)
    print(i, flush=True)
    time.sleep(0.005)
"""


class Writer:
    def __init__(self, site: Site, node: str, path: Path) -> None:
        self.stop_file = site.base / f"stop-{path.name}"
        self.proc = subprocess.Popen([*site.nsenter(node), sys.executable, "-c", WRITER,
                                      str(path), str(self.stop_file)],
                                     stdout=subprocess.PIPE, text=True)  # fmt: skip
        self.acked = 0
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())
            if line.strip().isdigit():
                self.acked = int(line)

    def wait_more(self, site: Site, n: int, what: str, timeout: float = 20.0) -> int:
        start = self.acked
        site.wait_for(lambda: self.acked >= start + n or self.proc.poll() is not None, what,
                      timeout)  # fmt: skip
        assert self.proc.poll() is None, f"the writer stopped: {self.lines[-3:]}"
        return self.acked

    def finish(self) -> int:
        self.stop_file.touch()
        rc = self.proc.wait(30)
        self._thread.join(5)
        assert rc == 0, f"the application got an error: {self.lines[-3:]}"
        return self.acked


def records(path: Path) -> list[int]:
    return [int(line.split()[1]) for line in path.read_text().splitlines()]


def never_primary(site: Site, node: str) -> None:
    text = site.out_path(node).read_text(errors="replace")
    assert "-> PRIM/" not in text and "-> ALONE/" not in text, site.tail(node, 40)


def other_build(site: Site, version: str = "0.1.1-next") -> Path:
    """A copy of the agent's code reporting another version: what an upgrade installs."""
    root = site.base / "build-next"
    for pkg in ("node_agent", "protos"):
        shutil.copytree(REPO / pkg, root / pkg,
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    init = root / "node_agent" / "__init__.py"
    init.write_text(
        re.sub(r'^VERSION = "[^"]*"', f'VERSION = "{version}"', init.read_text(), flags=re.M)
    )
    return root


def start_build(site: Site, node: str, root: Path, label: str = "next build") -> None:
    """Start ``node``'s agent from the code tree ``root`` (with this venv)."""
    out = site.out_path(node)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "ab") as fh:
        fh.write(f"----- agent start {time.strftime('%H:%M:%S')} ({label})\n".encode())
        env = {**os.environ, "PYTHONPATH": str(root)}
        argv = [*site.nsenter(node), sys.executable, "-m", "node_agent.main", "--config",
                str(site.config), "--node", node]  # fmt: skip
        site.agents[node] = subprocess.Popen(argv, cwd=root, stdout=fh, stderr=fh, env=env)
    site.wait_for(lambda: site._ready(node), f"{node} agent ({label}) ready", 30)
