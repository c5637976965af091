"""Starting a module's data plane, or taking over the one an earlier agent left running.

``connect(spec, run_dir)`` returns a client and whether the data plane was already
running (adopted). A running one is found by its token and its answer on the control
socket; one whose settings differ from the spec is kept if it holds a role (it serves a
mount or a stream: stopping it would stop the module) and replaced if it holds none. One of
an older build is adopted if its protocol is compatible (node_agent/protocol.py); one of
an incompatible protocol cannot be driven: it is killed and replaced, and its module starts
clean on this node as after a crash here (docs/upgrade.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import node_agent
from node_agent import procfs
from node_agent.dataplane.client import DataPlaneClient, DataPlaneError
from node_agent.dataplane.spec import (
    LOGFILE,
    PIDFILE,
    SPEC,
    TOKEN,
    DataPlaneSpec,
    socket_names,
    write_private,
)
from node_agent.protocol import PROTOCOL, announced, compatible
from protos import dataplane_pb2 as dp

log = logging.getLogger(__name__)
START_TIMEOUT_S = 30.0
LOG_KEEP_BYTES = 4 << 20  # dataplane.log beyond this at a start is moved to dataplane.log.1
CODE_ROOT = Path(node_agent.__file__).resolve().parent.parent


class DataPlaneStartError(RuntimeError):
    """The data plane did not start: the message quotes the end of its log."""


def _client(spec: DataPlaneSpec, run_dir: Path) -> DataPlaneClient | None:
    ctl, fd = socket_names(run_dir)
    try:
        token = (run_dir / TOKEN).read_text().strip()
    except OSError:
        return None
    return DataPlaneClient(spec.module, run_dir, ctl, fd, token) if token else None


def read_pid(run_dir: Path) -> int | None:
    try:
        return int((run_dir / PIDFILE).read_text().strip())
    except (OSError, ValueError):
        return None


def is_data_plane(pid: int | None) -> bool:
    """A running data plane (a pid file may name a pid reused since by another process)."""
    return pid is not None and procfs.running(pid) and b"node_agent.dataplane" in procfs.argv(pid)


def data_planes_under(folder: str) -> list[int]:
    """Running data planes whose command line names a path under ``folder``."""
    folder = folder.rstrip("/") + "/"  # pytest-5 is not under pytest-50
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    return [
        pid for pid in pids if is_data_plane(pid)
        and any(a.decode(errors="replace").startswith(folder) for a in procfs.argv(pid))
    ]  # fmt: skip


def find_running(
    spec: DataPlaneSpec, run_dir: Path
) -> tuple[DataPlaneClient, dp.DataPlaneState] | None:
    """The data plane an earlier agent left, if one answers."""
    if not is_data_plane(read_pid(run_dir)):
        return None
    client = _client(spec, run_dir)
    if client is None:
        return None
    try:
        return client, client.get_state(timeout=3.0)
    except DataPlaneError as e:
        log.warning("%s: a data plane runs (pid %s) but does not answer: %s", spec.module,
                    read_pid(run_dir), e)  # fmt: skip
        client.close()
        return None


def spawn(spec: DataPlaneSpec, run_dir: Path) -> tuple[DataPlaneClient, dp.DataPlaneState]:
    """Start a data plane for ``spec`` (blocking until it answers)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(run_dir, 0o700)
    stop_stale(run_dir)
    with contextlib.suppress(FileNotFoundError):
        (run_dir / TOKEN).unlink()
    write_private(run_dir / SPEC, spec.to_json())
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(CODE_ROOT), env.get("PYTHONPATH", "")) if p)
    _bound_log(run_dir / LOGFILE)
    with open(run_dir / LOGFILE, "ab") as out:
        # A session of its own: signals to the agent's process group do not reach it.
        proc = subprocess.Popen([sys.executable, "-m", "node_agent.dataplane", str(run_dir)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                                start_new_session=True, cwd="/")  # fmt: skip
    # Reaped when it exits (it is our child until we exit): no zombie looks alive.
    threading.Thread(target=proc.wait, name=f"dp-reap-{spec.module}", daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DataPlaneStartError(f"data plane of {spec.module} exited ({proc.returncode}): "
                                      f"{_log_tail(run_dir)}")  # fmt: skip
        client = _client(spec, run_dir) if read_pid(run_dir) == proc.pid else None
        if client is not None:
            try:
                return client, client.get_state(timeout=2.0)
            except DataPlaneError:
                client.close()
        time.sleep(0.02)
    proc.kill()
    raise DataPlaneStartError(f"data plane of {spec.module} did not answer within "
                              f"{START_TIMEOUT_S:g} s: {_log_tail(run_dir)}")  # fmt: skip


def _bound_log(path: Path) -> None:
    """Each start appends to the log (outside systemd, its logging goes there): keep it
    bounded, the previous one as LOGFILE.1."""
    with contextlib.suppress(OSError):
        if path.stat().st_size > LOG_KEEP_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))


def stop_stale(run_dir: Path) -> None:
    """A data plane of this run dir that does not answer is killed (it holds the socket
    names a new one needs)."""
    pid = read_pid(run_dir)
    if is_data_plane(pid):
        assert pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        for _ in range(200):
            if not is_data_plane(pid):
                break
            time.sleep(0.01)


def _log_tail(run_dir: Path, lines: int = 5) -> str:
    try:
        text = (run_dir / LOGFILE).read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


def connect(spec: DataPlaneSpec, run_dir: Path) -> tuple[DataPlaneClient, dp.DataPlaneState, bool]:
    """(client, its state, adopted): the running data plane, else a new one."""
    found = find_running(spec, run_dir)
    if found is not None:
        client, state = found
        theirs = announced(state.protocol_major, state.protocol_minor)
        if not compatible(PROTOCOL, theirs):
            log.error("%s: the running data plane (pid %d, %s) speaks protocol %s, incompatible "
                      "with this agent's %s: killed and replaced", spec.module, state.pid,
                      state.version, theirs, PROTOCOL)  # fmt: skip
            client.close()
            stop_stale(run_dir)
            client, state = spawn(spec, run_dir)
            return client, state, False
        if state.spec_digest == spec.digest():
            return client, state, True
        if state.role != dp.DataPlaneState.NONE:
            log.warning("%s: the running data plane has other settings but holds a role: kept "
                        "until the module stops here", spec.module)  # fmt: skip
            return client, state, True
        client.shutdown()
        client.close()
    client, state = spawn(spec, run_dir)
    return client, state, False


def running_data_planes(data_dir: Path) -> dict[str, int]:
    """module -> pid of each data plane running for the agent whose data dir this is."""
    out = {}
    for pidfile in Path(data_dir).glob("modules/*/dataplane/" + PIDFILE):
        pid = read_pid(pidfile.parent)
        if is_data_plane(pid):
            assert pid is not None
            out[pidfile.parent.parent.name] = pid
    return out


def kill_data_planes(data_dir: Path) -> list[int]:
    """SIGKILL them all: the crash of a whole server (a demo's "kill", a test's)."""
    pids = list(running_data_planes(data_dir).values())
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids
