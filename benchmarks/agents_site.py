"""The site benchmarks/agents.py runs on: two agents in namespaces (tests/integration/site.py),
the secondary's copy placed as asked, and the CPU time of their processes."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Agents, data planes and helpers run this checkout, not what the venv has installed.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
)
sys.path.insert(0, str(REPO))

from benchmarks.iobench import MiB  # noqa: E402
from tests.integration.cluster_netns import APP_CHECK, APP_STOP  # noqa: E402
from tests.integration.netns import Topology  # noqa: E402
from tests.integration.site import Site  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
SAMPLE_S = 0.05
PLACEMENTS = {
    "shared": "shared disk: node2's data dir on the same filesystem as node1's",
    "own": "own device: node2's data dir on ext4 on a loop device (file in /dev/shm)",
}
EXTRA_MODULE = """
[[module]]
name = "{name}"
kind = "app"
preferred = "node1"
start = "sleep 100000 >/dev/null 2>&1 & echo $! > app.pid"
stop = {stop}
check = {check}
start_timeout_s = 30
stop_timeout_s = 30
directories = ["{directory}"]
"""


class PairTimeout(RuntimeError):
    pass


# -- processes' CPU ------------------------------------------------------------------------
def proc_stat(pid: int) -> tuple[float, int]:
    """(utime + stime in seconds, minor page faults) of a process, all its threads; zeros
    once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK, int(fields[7])


def machine_busy() -> float:
    """CPU seconds the whole machine spent not idle (every process, this one included)."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK  # all but idle and iowait


class CpuMeter:
    """CPU and page faults of each node's data plane (of ``module``) and agent; the
    machine's CPU."""

    def __init__(self, site: Site, module: str = "web") -> None:
        self.pids = {}
        for node in ("node1", "node2"):
            self.pids[f"{node} data plane"] = site.data_plane_pids(node)[module]
            self.pids[f"{node} agent"] = site.agents[node].pid

    def read(self) -> dict[str, float]:
        """Per process "cpu WHO" (seconds) and "faults WHO"; "cpu machine" (seconds)."""
        out: dict[str, float] = {}
        for name, pid in self.pids.items():
            out[f"cpu {name}"], out[f"faults {name}"] = proc_stat(pid)
        out["cpu machine"] = machine_busy()
        return out

    @staticmethod
    def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {k: after[k] - before[k] for k in before}


# -- the secondary's copy on a device of its own ---------------------------------------------
@contextlib.contextmanager
def own_device(mountpoint: Path, size_mib: int) -> Iterator[str]:
    """ext4 on a loop device backed by a sparse file in /dev/shm, mounted at
    ``mountpoint`` (before the site's mount namespaces are made: they get a copy)."""
    fd, name = tempfile.mkstemp(prefix="mp-agents-node2-", suffix=".img", dir="/dev/shm")
    backing = Path(name)
    mounted = False
    try:
        os.ftruncate(fd, size_mib * MiB)
        os.close(fd)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(backing)], check=True, capture_output=True)
        mountpoint.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-o", "loop", str(backing), str(mountpoint)], check=True,
                       capture_output=True)  # fmt: skip
        mounted = True
        dev = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(mountpoint)],
                             capture_output=True, text=True).stdout.strip()  # fmt: skip
        yield f"ext4 on {dev or 'a loop device'} backed by {backing} ({size_mib} MiB)"
    finally:
        if mounted:
            for _ in range(20):
                if subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode:
                    time.sleep(0.25)  # a namespace that held it may still be going away
                else:
                    break
            else:
                subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)
            # mount -o loop sets autoclear; detach explicitly anyway (idempotent)
            loops = subprocess.run(["losetup", "-j", str(backing)], capture_output=True,
                                   text=True).stdout  # fmt: skip
            for line in loops.splitlines():
                subprocess.run(["losetup", "-d", line.split(":", 1)[0]], capture_output=True)
        backing.unlink(missing_ok=True)


def fs_of(path: Path) -> str:
    out = subprocess.run(["findmnt", "-n", "-o", "SOURCE,FSTYPE", "-T", str(path)],
                         capture_output=True, text=True).stdout.split()  # fmt: skip
    return " ".join(out) or "?"


# -- a site --------------------------------------------------------------------------------
class Bench:
    """One site (a fresh topology, directory and, for "own", loop device)."""

    def __init__(self, placement: str, label: str, keep: bool) -> None:
        self.placement, self.keep = placement, keep
        self.root = Path(tempfile.mkdtemp(prefix=f"mp-agents-{label}-", dir="/var/tmp"))
        self.base = self.root / "site"
        self.stack = contextlib.ExitStack()
        self.notes: list[str] = []
        self.planned_stop = ""  # when a phase stopped node2 on purpose (log time format)

    def __enter__(self) -> Bench:
        # Unwound in reverse: agents and namespaces, the log scan, the loop device, the files.
        try:
            self.stack.callback(self._remove)
            self.where = f"{fs_of(self.root)}, the filesystem of node1's copy"
            if self.placement == "own":
                self.where = self.stack.enter_context(
                    own_device(self.base / "node2" / "data", 2048)
                )
            self.stack.callback(self._scan_logs)
            topo = self.stack.enter_context(Topology())
            self.site: Site = self.stack.enter_context(Site(topo, self.base))
            self.pulse_s, self.timeout_s = self._heartbeat_times()
        except BaseException:
            self.stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    def _remove(self) -> None:
        if self.keep:
            print(f"  (kept {self.root})")
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    def _heartbeat_times(self) -> tuple[float, float]:
        cluster = tomllib.loads(self.site.config.read_text())["cluster"]
        return cluster["pulse_ms"] / 1000, cluster["timeout_ms"] / 1000

    def add_modules(self, names: list[str]) -> list[Path]:
        dirs = []
        text = self.site.config.read_text()
        for name in names:
            d = self.base / "srv" / name
            d.mkdir(parents=True, exist_ok=True)
            dirs.append(d)
            text += EXTRA_MODULE.format(name=name, stop=json.dumps(APP_STOP),
                                        check=json.dumps(APP_CHECK), directory=d)  # fmt: skip
        self.site.config.write_text(text)
        return dirs

    def _scan_logs(self) -> None:
        """Warnings and errors in the agents' and data planes' logs, counted by kind (every
        clean start logs one "check command failed": no application was running yet)."""
        logs = [self.base / n / "agent.out" for n in ("node1", "node2")]
        logs += sorted(self.base.glob("node*/data/modules/*/dataplane/dataplane.log"))
        counts: dict[str, int] = {}
        example: dict[str, str] = {}
        for log in logs:
            with contextlib.suppress(OSError):
                for line in log.read_text(errors="replace").splitlines():
                    if not re.search(r"\b(WARNING|ERROR|CRITICAL|Traceback|exceeds)\b", line):
                        continue
                    node = log.relative_to(self.base).parts[0]
                    kind = "agent" if log.name == "agent.out" else "data plane"
                    # the message without time, pid and module names: one key per kind
                    msg = re.sub(r"^\S+ \S+ ", "", line)
                    msg = re.sub(r"\b(m\d+|web)\b", "<module>", msg)
                    msg = re.sub(r"\d+", "N", msg)[:160]
                    # Logged once node2's agent was stopped on purpose (the "peer away"
                    # phase): expected, and told apart from the runs' own.
                    stop = self.planned_stop
                    phase = " after node2's planned stop" if stop and line[:19] >= stop else ""
                    key = f"{node} {kind}{phase}: {msg}"
                    counts[key] = counts.get(key, 0) + 1
                    example.setdefault(key, line.strip()[:300])
        self.notes = [f"{n}x {example[k]}  [{k.split(':')[0]}]" for k, n in counts.items()]
        if self.keep and self.placement == "own":  # node2's data dir goes with its device
            for log in self.base.glob("node2/data/modules/*/dataplane/dataplane.log"):
                dest = self.root / "node2-dataplane-logs" / f"{log.parents[1].name}.log"
                dest.parent.mkdir(exist_ok=True)
                shutil.copy2(log, dest)
