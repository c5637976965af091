"""The demo's sample application: a tiny web page naming the node that serves it.

`mirrorpair demo` copies this file into the demo folder; the `app` module runs

    python demo_app.py start NAME PORT [DATA]  # background the server, wait until it listens
    python demo_app.py stop NAME               # kill it and wait until it is gone
    python demo_app.py check NAME              # exit 0 while it runs

with $MIRRORPAIR_NODE (set by the agent) naming the node. Its pid file lives in
the node's data directory (<demo>/<node>/NAME.pid). Stdlib only.

With DATA (a replicated directory; "{node}" in it is replaced by the node), the app
also records: a 1 MiB segment every second into a ring of 32, and a small state file. Its
page shows how many were recorded and by which node, so after a failover the count
goes on where the other node left it: the data came across.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEGMENT, RING, EVERY_S = 1 << 20, 32, 1.0


def _node() -> str:
    return os.environ.get("MIRRORPAIR_NODE") or "unknown-node"


def _files(name: str) -> tuple[Path, Path]:
    folder = HERE / _node()
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.pid", folder / f"{name}.log"


def _alive(pid: int) -> bool:
    """Running and not a zombie (an init that never reaps would fool kill -0)."""
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z" and "demo_app" in _cmdline(pid)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _pid(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _parent_of(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _agent_pid() -> int:
    """The mirrorpair-agent that runs this command (through sh), or 0 if not found."""
    pid = os.getppid()
    for _ in range(6):
        if pid <= 1:
            break
        cmd = _cmdline(pid)
        if "node_agent.main" in cmd or "mirrorpair-agent" in cmd:
            return pid
        pid = _parent_of(pid)
    return 0


def _recording(data: Path) -> dict:
    try:
        return json.loads((data / "recording.json").read_text())
    except (OSError, ValueError):
        return {"segments": 0}


def record(data: Path) -> None:
    """Write a segment, then the state file (durably), forever. An error (the mount
    went away with a killed agent) is reported and retried: the app dies with its agent."""
    while True:
        try:
            state = _recording(data)
            n = int(state.get("segments", 0))
            (data / "segments").mkdir(exist_ok=True)
            with open(data / "segments" / f"{n % RING:02d}.bin", "wb") as f:
                f.write(os.urandom(SEGMENT))
                f.flush()
                os.fsync(f.fileno())
            state = {"segments": n + 1, "node": _node(), "time": time.time()}
            tmp = data / "recording.json.tmp"
            with open(tmp, "w") as f:
                json.dump(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, data / "recording.json")
        except OSError as e:
            print(f"recording in {data}: {e}", file=sys.stderr, flush=True)
        time.sleep(EVERY_S)


def serve(name: str, port: int, agent_pid: int, data: Path | None = None) -> None:
    node = _node()
    if data is not None:
        threading.Thread(target=record, args=(data,), daemon=True).start()

    def recording() -> str:
        if data is None:
            return ""
        state = _recording(data)
        last = time.strftime("%H:%M:%S", time.localtime(state.get("time", 0)))
        return (
            f"<p>{state.get('segments', 0)} segments recorded in {data} (1 MiB every "
            f"{EVERY_S:g} s, a ring of {RING}); the newest by {state.get('node', '-')} at "
            f"{last}</p>\n"
        )

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            body = (
                f"<!doctype html><title>{name}</title><h1>{name} is served by {node}</h1>\n"
                + recording()
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Page)
    print("ready", flush=True)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # the starter stops reading: no EPIPE later

    def follow_agent() -> None:
        # A real server's applications die with it: when the agent that started this
        # server is killed (the demo's "server crash"), the page must go too, or the
        # other node could not take the port over.
        while agent_pid <= 1 or _alive_any(agent_pid):
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=follow_agent, daemon=True).start()
    server.serve_forever()


def _alive_any(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def start(name: str, port: int, data: str = "") -> int:
    pidfile, logfile = _files(name)
    if _pid(pidfile) is not None:
        print(f"{name} already runs on {_node()}")
        return 0
    agent = _agent_pid()
    where = [data.replace("{node}", _node())] if data else []
    with open(logfile, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, __file__, "serve", name, str(port), str(agent), *where],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != b"ready":  # EOF: the server died (port taken?)
        proc.wait()
        tail = logfile.read_text(errors="replace").strip().splitlines()[-1:]
        print(f"{name}: the web server could not start on 127.0.0.1:{port}: {' '.join(tail)}")
        return 1
    proc.stdout.close()
    pidfile.write_text(f"{proc.pid}\n")
    print(f"{name} serves http://127.0.0.1:{port}/ from {_node()} (pid {proc.pid})")
    return 0


def stop(name: str) -> int:
    pidfile, _ = _files(name)
    pid = _pid(pidfile)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    print(f"{name} stopped on {_node()}")
    return 0


def check(name: str) -> int:
    pidfile, _ = _files(name)
    pid = _pid(pidfile)
    print(f"{name} {'runs' if pid else 'does not run'} on {_node()}")
    return 0 if pid is not None else 1


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "serve":
        data = Path(argv[4]) if len(argv) > 4 else None
        serve(argv[1], int(argv[2]), int(argv[3]) if len(argv) > 3 else 0, data)
        return 0
    if len(argv) in (3, 4) and argv[0] == "start":
        return start(argv[1], int(argv[2]), argv[3] if len(argv) == 4 else "")
    if len(argv) == 2 and argv[0] in ("stop", "check"):
        return stop(argv[1]) if argv[0] == "stop" else check(argv[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
