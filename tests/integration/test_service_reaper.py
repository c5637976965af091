"""The agent is a child subreaper (issue 14): an application's daemon, left by a start
command that double-forks, becomes the agent's child; when it dies the agent reaps it,
so its pid-file check fails (a zombie passes ``kill -0``) and the module sees it dead.
That daemon runs at nice 0 and oom_score_adj 0, not at the agent's -5 and -900."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from node_agent import procfs
from node_agent.host.reaper import children
from tests.conftest import require
from tests.integration.agents import LocalCluster

OOM = "/proc/self/oom_score_adj"


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state letter), None once the process is gone (reaped)."""
    fields = procfs.stat_fields(pid)
    return (int(fields[1]), fields[0]) if fields else None


def _daemon_module(root: Path) -> str:
    pidfile = shlex.quote(str(root)) + '/"$MIRRORPAIR_NODE"-daemon.pid'
    # The subshell forks the daemon and exits at once: the daemon is an orphan.
    start = f"(sleep 600 >/dev/null 2>&1 & echo $! > {pidfile}) &"
    return f"""
[[module]]
name = "daemon"
kind = "app"
preferred = "node1"
start = {start!r}
stop = {f"kill $(cat {pidfile}) 2>/dev/null; rm -f {pidfile}"!r}
check = {f"kill -0 $(cat {pidfile})"!r}

  [[module.checker]]
  name = "alive"
  kind = "process"
  interval_s = 1
  failures = 1
"""


def _nice(pid: int) -> int:
    fields = procfs.stat_fields(pid)
    assert fields is not None, f"process {pid} is gone"
    return int(fields[16])  # field 19 of /proc/PID/stat (stat_fields starts at field 3)


def _oom(pid: int) -> int:
    return int(Path(f"/proc/{pid}/oom_score_adj").read_text())


@contextmanager
def _favoured() -> Iterator[int | None]:
    """What the unit gives the agent -- Nice=-5, OOMScoreAdjust=-900 -- to the processes
    this thread starts meanwhile. oom_score_adj below 0 needs CAP_SYS_RESOURCE (often
    missing in a container): then the agents keep 0 and None is yielded (the wrapper's
    write is run for real in tests/unit/test_child_priority.py)."""
    require(os.geteuid() == 0, "needs root (a nice value below 0)")
    nice, oom = os.getpriority(os.PRIO_PROCESS, 0), Path(OOM).read_text().strip()
    os.setpriority(os.PRIO_PROCESS, 0, -5)  # this thread's: the agents are forked from it
    try:
        Path(OOM).write_text("-900")
        favoured: int | None = -900
    except PermissionError:
        favoured = None
    try:
        yield favoured
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
        Path(OOM).write_text(oom)


def test_dead_daemon_of_an_application_is_reaped_and_seen_dead(tmp_path: Path) -> None:
    lc = LocalCluster(tmp_path, modules=(), extra_toml=_daemon_module(tmp_path))
    with ExitStack() as stack:
        with _favoured() as agent_oom:  # while the agents start: they inherit it
            stack.enter_context(lc)
        lc.wait_state("node1", "daemon", "PRIM", "READY")
        agent = lc.agents["node1"].proc
        assert agent is not None
        pidfile = tmp_path / "node1-daemon.pid"
        daemon = int(pidfile.read_text())
        assert _stat(daemon) == (agent.pid, "S"), "the orphaned daemon is the agent's child"
        # The agent keeps the unit's priority; the application gets the defaults.
        assert _nice(agent.pid) == -5 and _oom(agent.pid) == (agent_oom or 0)
        assert (_nice(daemon), _oom(daemon)) == (0, 0)

        os.kill(daemon, signal.SIGKILL)  # the application dies on its own
        deadline = time.monotonic() + 20
        while _stat(daemon) is not None:  # a zombie until reaped
            assert time.monotonic() < deadline, f"daemon {daemon} left as {_stat(daemon)}"
            time.sleep(0.05)
        # ... and the module's check saw it dead: the process checker tripped.
        deadline = time.monotonic() + 20
        while True:
            logs = lc.client("node1").logs("daemon", limit=200)
            if any("alive:" in e.message and "check command failed" in e.message for e in logs):
                break
            assert time.monotonic() < deadline, [e.message for e in logs][-20:]
            time.sleep(0.1)

        # No zombie child of the agent outlives the reaper's grace (2 s).
        before = {p for p in children(agent.pid) if (_stat(p) or (0, ""))[1] == "Z"}
        time.sleep(3.0)
        after = {p for p in children(agent.pid) if (_stat(p) or (0, ""))[1] == "Z"}
        assert not before & after, f"zombies left with the agent as parent: {before & after}"


_SCRIPT = r"""
import json, os, subprocess, sys, time
from node_agent.host.reaper import ChildReaper, become_subreaper, children, zombie_children

now = [0.0]
reaper = ChildReaper(clock=lambda: now[0])
assert become_subreaper()
# An orphan: the shell's subshell starts it and exits; it exits at once too.
subprocess.run(["sh", "-c", "(sh -c 'echo $$ > orphan.pid; exit 3' &) ; sleep 0.1"], check=True)
orphan = int(open("orphan.pid").read())
owned = subprocess.Popen(["sh", "-c", "exit 5"])  # ours: its owner waits (a little late)
deadline = time.monotonic() + 10
while not {orphan, owned.pid} <= set(zombie_children()):
    assert time.monotonic() < deadline, "the orphan never became our zombie child"
    time.sleep(0.01)
first = reaper.reap_once()           # seen, within the grace: nothing reaped
owned_rc = owned.wait()              # the owner gets its child's real exit status
now[0] += 2.5
second = reaper.reap_once()          # past the grace: the orphan no one waited for
print(json.dumps({"orphan": orphan, "first": first, "second": second, "owned_rc": owned_rc,
                  "left": sorted(children()), "reaped": reaper.reaped}))
"""


def test_reaper_reaps_orphans_only_past_the_grace(tmp_path: Path) -> None:
    """In a process of its own (it becomes a subreaper): the orphan is reaped once no
    one waited for it within the grace; within the grace nothing is touched."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    r = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True,
                       timeout=60, cwd=tmp_path, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["first"] == [] and got["owned_rc"] == 5
    assert got["second"] == [got["orphan"]] and got["reaped"] == 1
    assert got["left"] == []  # no zombie child left
