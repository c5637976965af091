"""The data plane outlives the agent (issue 13, point 1), on the two-server site.

- The agent is SIGKILLed while an application appends records with fsync through the
  module's mount: the writes go on while no agent runs, the restarted agent takes the
  data plane over (same process), the pair stays PRIM/SECOND, nothing acknowledged is
  missing from the secondary's copy. Then the agent is replaced by another build of it
  (a rolling upgrade of the agent alone): the same.
- A data plane is SIGKILLed: its module fails over as after a crash of the primary; the
  other module, in its own data plane, is untouched.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.integration.cluster_netns import APP_CHECK, REPO
from tests.integration.site import Site

pytestmark = pytest.mark.root

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


def _records(path: Path) -> list[int]:
    return [int(line.split()[1]) for line in path.read_text().splitlines()]


def _never_primary(site: Site, node: str) -> None:
    text = site.out_path(node).read_text(errors="replace")
    assert "-> PRIM/" not in text and "-> ALONE/" not in text, site.tail(node, 40)


def _other_build(site: Site) -> Path:
    """A copy of the agent's code reporting another version: what an upgrade installs."""
    root = site.base / "build-next"
    for pkg in ("node_agent", "protos"):
        shutil.copytree(REPO / pkg, root / pkg,
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    init = root / "node_agent" / "__init__.py"
    init.write_text(init.read_text().replace('VERSION = "0.1.0"', 'VERSION = "0.1.1-next"'))
    return root


def _start_build(site: Site, node: str, root: Path) -> None:
    out = site.out_path(node)
    with open(out, "ab") as fh:
        fh.write(f"----- agent start {time.strftime('%H:%M:%S')} (next build)\n".encode())
        env = {**os.environ, "PYTHONPATH": str(root)}
        argv = [*site.nsenter(node), sys.executable, "-m", "node_agent.main", "--config",
                str(site.config), "--node", node]  # fmt: skip
        site.agents[node] = subprocess.Popen(argv, cwd=root, stdout=fh, stderr=fh, env=env)
    site.wait_for(lambda: site._ready(node), f"{node} agent (next build) ready", 30)


def test_the_mount_and_the_stream_outlive_the_agent(site: Site) -> None:
    site.start()
    site.wait_pair("node1", timeout=40)
    planes = site.data_plane_pids("node1")
    assert set(planes) == {"web"}, planes
    writer = Writer(site, "node1", site.www / "records.log")
    writer.wait_more(site, 50, "records written through the mount")

    site.kill_agent("node1", data_planes=False)
    at_kill = writer.acked
    # Few: the new agent must be up within the peer's detection timeout (3 s in the
    # example config) even on a loaded machine, or the peer rightly takes over.
    writer.wait_more(site, 20, "records written while no agent runs", timeout=10)
    assert site.mounted("node1")
    site.start("node1")
    site.wait_state("node1", "PRIM", "READY", timeout=20)
    assert site.state("node2") == ("SECOND", "READY")
    assert site.data_plane_pids("node1") == planes, "the same data plane, taken over"
    text = site.agent_text("node1")
    assert "data plane (pid" in text or "taken over" in text, text[-2000:]
    writer.wait_more(site, 50, "records written after the restart")

    # The secondary's agent too: its data plane goes on receiving.
    second = site.data_plane_pids("node2")
    site.kill_agent("node2", data_planes=False)
    writer.wait_more(site, 20, "records written while node2 has no agent", timeout=10)
    site.start("node2")
    site.wait_state("node2", "SECOND", "READY", timeout=20)
    assert site.data_plane_pids("node2") == second
    assert site.state("node1") == ("PRIM", "READY")

    # A rolling upgrade of the agent alone: another build takes the data plane over.
    # The old one is told to leave its modules running (SIGUSR2) and exits at once.
    root = _other_build(site)
    site.agents["node1"].send_signal(signal.SIGUSR2)
    assert site.agents["node1"].wait(10) == 0
    assert "exits leaving its modules running" in site.agent_text("node1")
    assert site.mounted("node1")
    writer.wait_more(site, 20, "records written during the upgrade", timeout=10)
    _start_build(site, "node1", root)
    site.wait_state("node1", "PRIM", "READY", timeout=20)
    st = site.status("node1")
    assert st is not None and st["version"] == "0.1.1-next", st
    assert site.data_plane_pids("node1") == planes
    writer.wait_more(site, 50, "records written after the upgrade")

    last = writer.finish()
    assert last > at_kill + 200
    _never_primary(site, "node2")
    assert site.state("node2") == ("SECOND", "READY")
    assert site.http() == "node1\n"
    copy = site.module_dir("node2") / "copy" / "0" / "records.log"
    got = _records(copy)
    assert got[:last] == list(range(1, last + 1)), "an acknowledged record is missing"


NOTES_MODULE = """
[[module]]
name = "notes"
kind = "app"
preferred = "node1"
start = "sleep 100000 >/dev/null 2>&1 & echo $! > app.pid"
stop = {stop}
check = {check}
start_timeout_s = 10
stop_timeout_s = 10
directories = ["{base}/srv/notes"]
"""


def test_a_dead_data_plane_fails_its_module_over_and_only_it(site: Site) -> None:
    import json

    (site.base / "srv" / "notes").mkdir(parents=True)
    stop = "p=$(cat app.pid 2>/dev/null) || exit 0; kill $p; rm -f app.pid"
    site.config.write_text(site.config.read_text() + NOTES_MODULE.format(
        stop=json.dumps(stop), check=json.dumps(APP_CHECK), base=site.base))  # fmt: skip
    site.start()
    site.wait_pair("node1", timeout=40)
    site.wait_for(lambda: (site.module_named("node2", "notes") or {}).get("state")
                  == "STATE_SECOND", "notes SECOND on node2", 30)  # fmt: skip
    site.wait_module("node1", "notes", "PRIM", "READY")
    planes = site.data_plane_pids("node1")
    assert set(planes) == {"web", "notes"}, planes
    notes_app = (site.base / "node1" / "data" / "modules" / "notes" / "app.pid").read_text()
    notes = Writer(site, "node1", site.base / "srv" / "notes" / "n.log")
    notes.wait_more(site, 30, "notes written")

    os.kill(planes["web"], signal.SIGKILL)
    site.wait_module("node2", "web", "ALONE", "READY", timeout=30)
    site.wait_for(lambda: site.http() == "node2\n", "the VIP serves node2", 30)
    # node1 restarted the web data plane and follows as secondary once resynced.
    site.wait_module("node1", "web", "SECOND", "READY", timeout=60)
    site.wait_module("node2", "web", "PRIM", "READY", timeout=30)
    assert site.data_plane_pids("node1")["web"] != planes["web"]

    # The other module did not notice: same data plane, same application, still writing.
    assert site.data_plane_pids("node1")["notes"] == planes["notes"]
    assert (site.base / "node1" / "data" / "modules" / "notes" / "app.pid").read_text() == notes_app
    assert site.module_named("node1", "notes")["state"] == "STATE_PRIM"  # type: ignore[index]
    notes.wait_more(site, 30, "notes still written")
    last = notes.finish()
    copy = site.base / "node2" / "data" / "modules" / "notes" / "copy" / "0" / "n.log"
    assert _records(copy)[:last] == list(range(1, last + 1))
    logs = site.logs_of("node1", "web")
    assert any("data plane died" in e.get("message", "") for e in logs), logs[-5:]
