"""Replication on the netns topology: ``ReplCluster`` (a NetnsCluster whose module ``web``
replicates ``<base>/<node>/mnt``), a crash-safe writer and its checker.

Mount namespaces: ``ip netns exec`` gives each process a private mount namespace, so a FUSE
mount an agent made there would be invisible to everybody else (the test, fio, the
restarted agent). ``ReplCluster`` starts the agents with ``nsenter --net`` instead: the
network namespace of the node, the machine's mount namespace -- like a real server, where
the application sees the agent's mount. Both nodes share the filesystem, hence the
per-node mount path (``{node}``) and data dir.

The writer (``python -m tests.integration.repl_netns write FILE LOG``) overwrites slots of
FILE round-robin with records derived from (seed, seq), fsyncs after each, and appends to
LOG -- which lives outside the mount -- ``T seq slot crc`` before the write and
``A seq slot crc`` only after fsync returned; every 64th record it also creates a small
file (``F name crc`` after the file and its directory were fsynced). On the first error it
logs ``E ...`` and exits 0. ``check_log`` then tells which acknowledged writes a copy lacks.

``python -m tests.integration.repl_netns rogue BASE PATH`` (run in node1's namespace) is a
hostile "primary": node1's certificate, a HELLO for module web, one op on PATH; it prints
the sender's state and failure as JSON.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

from tests.integration.cluster_netns import BIN, MODULE, REPO, NetnsCluster
from tests.integration.netns import LAN_IF, LAN_IP, VIP_CIDR

MiB = 1 << 20
REPL_PORT = 7702  # the default: the api host, port 7702
REC = 16 * 1024  # writer record size
SLOTS = 256  # writer slots: 4 MiB, rewritten every 256 records
# One line per resync the primary completed (the module_repl logger's copy of it).
UP_TO_DATE = re.compile(r"module_repl: web: \w+ is up to date \((\w+), (\d+) bytes sent\)")


def fusermount_uz(path: Path) -> None:
    subprocess.run(["fusermount3", "-uz", str(path)], capture_output=True, check=False)


class ReplCluster(NetnsCluster):
    """NetnsCluster + ``directories = ["<base>/{node}/mnt"]`` on module web."""

    def __init__(self, topo, base: Path, **kw) -> None:  # noqa: ANN001
        super().__init__(topo, base, **kw)
        text = self.config.read_text()
        line = f'directories = ["{base}/{{node}}/mnt"]\n'
        self.config.write_text(text.replace('kind = "app"\n', f'kind = "app"\n{line}', 1))
        self.procs: list[subprocess.Popen] = []  # writers, fio: killed first by close()

    def mnt(self, node: str) -> Path:
        return self.base / node / "mnt"

    def copy(self, node: str) -> Path:
        return self.module_dir(node) / "copy" / "0"

    def start(self, *nodes: str, timeout: float = 20.0) -> None:
        for node in nodes or ("node1", "node2"):
            assert node not in self.agents or self.agents[node].poll() is not None
            out = self.out_path(node)
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(out, "ab") as fh:
                fh.write(f"----- agent start {time.strftime('%H:%M:%S')}\n".encode())
                argv = ["nsenter", f"--net=/run/netns/{self.topo.ns[node]}", "--",
                        str(BIN / "mirrorpair-agent"), "--config", str(self.config),
                        "--node", node]  # fmt: skip
                # nsenter execs the agent: .pid is the agent's own.
                self.agents[node] = subprocess.Popen(argv, cwd=REPO, stdout=fh, stderr=fh)
        for node in nodes or ("node1", "node2"):
            self.wait_for(lambda n=node: self._ready(n), f"{node} agent ready", timeout)

    def crash(self, node: str, unmount: bool = True) -> None:
        """SIGKILL the agent and its app; drop the VIP it left (a reboot would) and, with
        ``unmount``, its dead FUSE mount (else the next mount must clear it itself)."""
        self.kill_agent(node)
        self.kill_app(node)
        if unmount:
            fusermount_uz(self.mnt(node))
        self.topo.exec(node, "ip", "addr", "del", VIP_CIDR, "dev", LAN_IF, check=False)

    def shape(self, node: str, rate: str | None) -> None:
        """Cap what ``node`` sends on the LAN (tc tbf), e.g. "400mbit"; None: remove."""
        if rate is None:
            self.topo.exec(node, "tc", "qdisc", "del", "dev", LAN_IF, "root", check=False)
        else:
            self.topo.exec(node, "tc", "qdisc", "replace", "dev", LAN_IF, "root", "tbf",
                           "rate", rate, "burst", "256kb", "latency", "100ms")  # fmt: skip

    def spawn(self, argv: list, **kw) -> subprocess.Popen:  # noqa: ANN003
        proc = subprocess.Popen([str(a) for a in argv], cwd=kw.pop("cwd", REPO), **kw)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        super().close()
        for node in ("node1", "node2"):
            fusermount_uz(self.mnt(node))

    # -- observing --------------------------------------------------------------------
    def agent_text(self, node: str, last_start: bool = True) -> str:
        text = self.out_path(node).read_text(errors="replace")
        return text.rsplit("----- agent start", 1)[-1] if last_start else text

    def resyncs(self, node: str) -> list[tuple[str, int]]:
        """(record, bytes sent) of each resync this primary completed, oldest first (its
        data plane logs them: all its runs are in one file)."""
        return [(m[1], int(m[2])) for m in UP_TO_DATE.finditer(self.dataplane_text(node))]

    def resync_progress(self, node: str) -> dict | None:
        m = self.module(node)
        return m.get("resync") if m else None

    def wait_resyncs(self, node: str, count: int, timeout: float) -> tuple[str, int]:
        self.wait_for(lambda: len(self.resyncs(node)) >= count, f"resync {count} by {node}",
                      timeout)  # fmt: skip
        return self.resyncs(node)[count - 1]

    def cli_ok(self, *args: str) -> str:
        r = self.cli(*args)
        assert r.returncode == 0, f"mirrorpair {' '.join(args)}: {r.stdout}{r.stderr}"
        return r.stdout


# -- writer and checker ------------------------------------------------------------------
def record(seed: bytes, seq: int, size: int = REC) -> bytes:
    block = hashlib.blake2b(seed + seq.to_bytes(8, "big"), digest_size=64).digest()
    return (block * (size // 64 + 1))[:size]


class Writer:
    """The writer as a subprocess of the test (outside the agents' network namespaces)."""

    def __init__(self, c: ReplCluster, file: Path, log: Path) -> None:
        self.file, self.log = file, log
        self.proc = c.spawn([sys.executable, "-m", "tests.integration.repl_netns", "write",
                             file, log])  # fmt: skip

    def acked(self) -> int:
        with contextlib.suppress(OSError):
            return self.log.read_text().count("\nA ")
        return 0

    def errors(self) -> list[str]:
        return [ln for ln in self.log.read_text().splitlines() if ln.startswith("E ")]

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (finish the current record, exit) and wait; returns its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout)


def check_log(root: Path, log: Path, name: str = "w.dat") -> tuple[int, list[str]]:
    """(acknowledged records checked, problems) of the writer's log against ``root``."""
    acked: dict[int, int] = {}  # slot -> crc of the last acknowledged record
    maybe: dict[int, set[int]] = {}  # slot -> crcs tried after it, never acknowledged
    files: dict[str, int] = {}
    n = 0
    for line in log.read_text().splitlines()[1:]:
        kind, *f = line.split()
        if kind == "T":
            maybe.setdefault(int(f[1]), set()).add(int(f[2]))
        elif kind == "A":
            acked[int(f[1])], maybe[int(f[1])] = int(f[2]), set()
            n += 1
        elif kind == "F":
            files[f[0]] = int(f[1])
    problems = []
    try:
        data = (root / name).read_bytes()
    except OSError as e:
        return n, [f"{name}: {e}"]
    for slot, crc in sorted(acked.items()):
        got = zlib.crc32(data[slot * REC : (slot + 1) * REC])
        if got != crc and got not in maybe[slot]:
            problems.append(f"slot {slot}: crc {got:#x}, acknowledged {crc:#x}")
    for fname, crc in sorted(files.items()):
        try:
            got = zlib.crc32((root / fname).read_bytes())
        except OSError as e:
            problems.append(f"{fname}: {e}")
            continue
        if got != crc:
            problems.append(f"{fname}: crc {got:#x}, acknowledged {crc:#x}")
    return n + len(files), problems


def _write(file: Path, log_path: Path) -> None:
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    seed = os.urandom(8)
    with open(log_path, "w", buffering=1) as log:
        log.write(f"S {seed.hex()}\n")
        try:
            fd = os.open(file, os.O_RDWR | os.O_CREAT, 0o644)
            seq = 0
            while not stop:
                slot, data = seq % SLOTS, record(seed, seq)
                crc = zlib.crc32(data)
                log.write(f"T {seq} {slot} {crc}\n")
                os.pwrite(fd, data, slot * REC)
                os.fsync(fd)
                log.write(f"A {seq} {slot} {crc}\n")
                if seq % 64 == 63:
                    name, small = f"f{seq}.bin", record(seed + b"f", seq, 3000)
                    with open(file.parent / name, "wb") as fh:
                        fh.write(small)
                        fh.flush()
                        os.fsync(fh.fileno())
                    dfd = os.open(file.parent, os.O_RDONLY | os.O_DIRECTORY)
                    try:
                        os.fsync(dfd)
                    finally:
                        os.close(dfd)
                    log.write(f"F {name} {zlib.crc32(small)}\n")
                seq += 1
        except OSError as e:
            log.write(f"E {e.errno} {e}\n")


def tree(root: Path) -> dict[str, tuple[str, int, str]]:
    """{relative path: (kind, mode, content digest or link target)} of a tree."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            if p.is_symlink():
                what = ("l", os.readlink(p))
            elif p.is_dir():
                what = ("d", "")
            else:
                h = hashlib.blake2b(digest_size=16)
                with open(p, "rb") as fh:
                    while chunk := fh.read(1 << 20):
                        h.update(chunk)
                what = ("f", h.hexdigest())
            out[str(p.relative_to(root))] = (what[0], st.st_mode & 0o7777, what[1])
    return out


def diff_trees(a: Path, b: Path) -> list[str]:
    ta, tb = tree(a), tree(b)
    return [f"{k}: {ta.get(k)} vs {tb.get(k)}" for k in sorted(ta.keys() | tb.keys())
            if ta.get(k) != tb.get(k)]  # fmt: skip


def fio(path: Path, *args: str, cwd: Path | None = None, timeout: float = 180) -> dict:
    """Run one fio job on ``path``: {"rc", "job" (its JSON report), "err"}."""
    argv = ["fio", "--name=w", f"--filename={path}", "--output-format=json", *args]
    if not any(a.startswith("--verify_state_save") for a in args):
        argv.append("--verify_state_save=0")  # else a state file lands in cwd
    r = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return {"rc": r.returncode, "job": fio_report(r.stdout), "err": r.stderr[-2000:]}


def fio_report(stdout: str) -> dict:
    with contextlib.suppress(ValueError, KeyError, IndexError):
        return json.loads(stdout[stdout.index("{") :])["jobs"][0]
    return {}


def _rogue(base: Path, path: str) -> None:
    from node_agent.config.model import NodePaths
    from node_agent.replication import ops
    from node_agent.replication.stream.sender import NotAcknowledged, StreamSender

    pki = base / "pki"
    tls = NodePaths(base / "rogue", pki / "ca.pem", pki / "node1.pem", pki / "node1.key")
    failures: list[str] = []
    sender = StreamSender(
        module=MODULE, node_id="node1", peer="node2", host=LAN_IP["node2"], port=REPL_PORT,
        tls=tls, generation="rogue", on_failure=lambda reason, _ops: failures.append(reason),
        fallback=lambda _op: None,
    )  # fmt: skip
    sender.connect()
    acknowledged = True
    try:
        sender.enqueue(ops.Create(path, 0o100644))()
    except NotAcknowledged:
        acknowledged = False
    print(json.dumps({"state": str(sender.state.name), "failures": failures,
                      "acknowledged": acknowledged}))  # fmt: skip
    sender.close(timeout_s=0)


if __name__ == "__main__":
    if sys.argv[1] == "write":
        _write(Path(sys.argv[2]), Path(sys.argv[3]))
    elif sys.argv[1] == "rogue":
        _rogue(Path(sys.argv[2]), sys.argv[3])
    else:
        sys.exit(f"usage: {sys.argv[0]} write FILE LOG | rogue BASE PATH")
