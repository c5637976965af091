"""Replication through the real agents and their data planes (issue 13, "Measure").

    sudo .venv/bin/python -m benchmarks.agents [--quick] [--keep]
        [--reps 3] [--fio-runtime 10] [--dd-reps 6] [--dd-mib 512] [--placements shared,own]
        [--modules 64] [--writers 8] [--hb-seconds 30] [--hb-placements ...] [--pair-timeout S]

(from the repository's root; it runs this checkout: PYTHONPATH is set for every process
it starts). A two-server site as the integration tests build it
(tests/integration/site.py: two agents, each in a network and a mount namespace of its
own, configured from resources/config/cluster.example.toml; module "web" replicates
<base>/srv/www). Each module's data plane (python -m node_agent.dataplane) owns its FUSE
mount and stream.

(1) Writes, from inside node1's namespaces, on a plain directory of node1 (the same
    filesystem as node1's copy of the module) and on the replicated mount, back to back,
    the order alternating between pairs (each pair gives a ratio, in the same minute):
      fio --rw=randwrite --bs=4k --fsync=1 --ioengine=psync, time-based
          -> IOPS, write and fsync latency p50/p99 (write+fsync: the sum of the two)
      dd if=/dev/zero bs=1M count=N conv=fsync (fsync at the end)       -> MB/s
    and the CPU time (utime + stime from /proc/PID/stat) of each node's data plane and
    agent over each replicated run, per MiB (dd) and per write+fsync (fio); the whole
    machine's (/proc/stat: other jobs on the machine count too) for comparison.
    Then node2's agent stops and the fio pairs run again ("peer away"): node1's data
    plane only tracks changes, so this is the FUSE path alone, before any replication.
(2) Heartbeat lateness with --modules modules replicating: another site with that many
    modules (web + the others, each replicating a directory of its own), all PRIM on
    node1 / SECOND on node2. Nothing inside the agent records lateness, so each node's
    GetStatus (per heartbeat link: the age of the last accepted heartbeat, and how many
    were accepted) is polled every 50 ms from the client namespace, first idle, then
    while fio writes into --writers of the mounts. A heartbeat's arrival is the status's
    time minus that age (the agent's clock: the poll's own delay does not count);
    lateness = the gap since the previous arrival on the same link minus the pulse.
    "max silence" is the largest age seen (a 50 ms sample: up to 50 ms short).

Both run twice, for two placements of the secondary's copy (node2's data dir):
  shared: on the same filesystem as node1's (one disk: both copies share its bandwidth);
  own:    ext4 on a loop device backed by a file in /dev/shm: a filesystem and a device
          of its own, as on a real pair, with a journal and real fsyncs (tmpfs would make
          the secondary's fsync free).

Prints tables and, last, one JSON line. --quick: 2 fio pairs of 3 s, 3 dd pairs of 128
MiB, 16 modules, 8 s phases: about 2 minutes. The default run takes about 10.
Everything is removed on exit, Ctrl-C or error (namespaces, mounts, loop devices,
processes); --keep leaves the site directories (logs) under /var/tmp.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Agents, data planes and helpers run this checkout, not what the venv has installed.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
)
sys.path.insert(0, str(REPO))

from benchmarks.iobench import MiB, dd_fsync, fio_randwrite  # noqa: E402
from tests.integration.cluster_netns import API_PORT, APP_CHECK, APP_STOP  # noqa: E402
from tests.integration.netns import LAN_IP, Topology, cleanup_stale  # noqa: E402
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


# -- (1) writes ----------------------------------------------------------------------------
Runs = dict[str, list[dict[str, float]]]  # "local"/"replicated" -> each run's numbers


def bench_writes(b: Bench, reps: int, runtime: float, dd_reps: int, dd_mib: int) -> dict[str, Any]:
    site = b.site
    t0 = time.monotonic()
    site.start()
    site.wait_pair("node1", timeout=90)
    print(f"  pair PRIM/SECOND {time.monotonic() - t0:.1f} s after the agents started")
    ns = site.nsenter("node1")
    local = b.base / "node1" / "local"  # same filesystem as node1/data/modules/web/copy
    local.mkdir()
    meter = CpuMeter(site)
    where = {"local": local, "replicated": site.www}

    def pairs(n: int, run: Callable[[Path], dict[str, float]], label: str) -> Runs:
        """n local+replicated pairs, back to back, the order alternating; CPU of each."""
        runs: Runs = {"local": [], "replicated": []}
        for rep in range(n):
            order = ("local", "replicated") if rep % 2 == 0 else ("replicated", "local")
            for w in order:
                before = meter.read()
                r = run(where[w])
                r.update(CpuMeter.delta(before, meter.read()))
                runs[w].append(r)
            print(
                f"  {label} {rep + 1}/{n}: " + describe(runs["local"][-1], runs["replicated"][-1])
            )
        return runs

    fio_runs = pairs(reps, lambda d: fio_randwrite(d, runtime, ns), "fio")
    for r in fio_runs["local"] + fio_runs["replicated"]:
        r["lat_p50"] = r["p50"] + r["sync_p50"]
        r["lat_p99"] = r["p99"] + r["sync_p99"]
    dd_runs = pairs(dd_reps, lambda d: {"mbs": dd_fsync(d, dd_mib, ns)}, "dd")
    held = (site.state("node1"), site.state("node2"))
    out = summarize_writes(fio_runs, dd_runs, dd_mib)
    out["pair_held"] = "yes" if held == (("PRIM", "READY"), ("SECOND", "READY")) else f"no: {held}"
    out["away"] = bench_peer_away(b, reps, runtime, ns)
    return out


def bench_peer_away(b: Bench, reps: int, runtime: float, ns: list[str]) -> dict[str, Any]:
    """The same fio loop once node2's agent stopped: node1 serves the module alone, its
    data plane only tracks changes -- what the FUSE path costs with no replication at all
    (the floor any replication through it starts from). Each run paired with a local one."""
    site = b.site
    b.planned_stop = time.strftime("%Y-%m-%d %H:%M:%S")  # the logs' own format, local time
    site.stop_agent("node2")
    site.wait_for(
        lambda: (site.module("node1") or {}).get("data_plane", {}).get("mode") == "track",
        "node1's data plane tracking alone", 60,
    )  # fmt: skip
    local = b.base / "node1" / "local"
    ratios, lat, runs = [], [], []
    for rep in range(reps):
        order = ("local", "away") if rep % 2 == 0 else ("away", "local")
        r = {w: fio_randwrite(local if w == "local" else site.www, runtime, ns) for w in order}
        ratios.append(r["away"]["iops"] / r["local"]["iops"] if r["local"]["iops"] else 0.0)
        lat.append((r["away"]["p50"] + r["away"]["sync_p50"])
                   / max(1.0, r["local"]["p50"] + r["local"]["sync_p50"]))  # fmt: skip
        runs.append(r)
        print(f"  fio, peer away {rep + 1}/{reps}: {r['local']['iops']:.0f} IOPS local, "
              f"{r['away']['iops']:.0f} through the mount alone")  # fmt: skip
    return {
        "iops_local": statistics.median(r["local"]["iops"] for r in runs),
        "iops_away": statistics.median(r["away"]["iops"] for r in runs),
        "iops_ratio": statistics.median(ratios),
        "lat_p50_away": statistics.median(r["away"]["p50"] + r["away"]["sync_p50"] for r in runs),
        "lat_p50_ratio": statistics.median(lat),
    }


def describe(loc: dict[str, float], rep: dict[str, float]) -> str:
    if "mbs" in loc:
        return f"1 MiB seq {loc['mbs']:.0f} MB/s local, {rep['mbs']:.0f} replicated"
    return f"4k write+fsync {loc['iops']:.0f} IOPS local, {rep['iops']:.0f} replicated"


GOALS = {"iops": (">=", 0.5), "lat_p50": ("<=", 2.0), "mbs": (">=", 0.7)}
ROWS = [
    ("iops", "4 KiB randwrite + fsync: IOPS"),
    ("lat_p50", "  write+fsync p50 (µs, sum)"),
    ("lat_p99", "  write+fsync p99 (µs, sum)"),
    ("p50", "    write p50 (µs)"),
    ("p99", "    write p99 (µs)"),
    ("sync_p50", "    fsync p50 (µs)"),
    ("sync_p99", "    fsync p99 (µs)"),
    ("mbs", "1 MiB seq, fsync at end (MB/s)"),
]


def summarize_writes(fio_runs: Runs, dd_runs: Runs, dd_mib: int) -> dict[str, Any]:
    out: dict[str, Any] = {"reps": len(fio_runs["local"]), "dd_reps": len(dd_runs["local"]),
                           "dd_mib": dd_mib, "metrics": {}}  # fmt: skip
    for key, _ in ROWS:
        runs = dd_runs if key == "mbs" else fio_runs
        loc = [r[key] for r in runs["local"]]
        rep = [r[key] for r in runs["replicated"]]
        ratios = [b / a if a else 0.0 for a, b in zip(loc, rep, strict=True)]
        out["metrics"][key] = {
            "local": statistics.median(loc),
            "replicated": statistics.median(rep),
            "ratio": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "ratios": [round(x, 3) for x in ratios],
        }
    fio, dd = fio_runs["replicated"], dd_runs["replicated"]
    whos = [k.removeprefix("cpu ") for k in dd[0] if k.startswith("cpu ")]
    out["cpu_replicated"] = {
        who: {
            "ms_per_mib": statistics.median(r[f"cpu {who}"] * 1e3 / dd_mib for r in dd),
            "us_per_op": statistics.median(r[f"cpu {who}"] * 1e6 / r["ios"] for r in fio),
        }
        for who in whos
    }
    for who in whos:
        if who != "machine":  # page faults: fresh pages for the data path's buffers
            out["cpu_replicated"][who]["faults_per_mib"] = statistics.median(
                r[f"faults {who}"] / dd_mib for r in dd
            )
    loc_machine = [r["cpu machine"] * 1e3 / dd_mib for r in dd_runs["local"]]
    out["cpu_local_machine_ms_per_mib"] = statistics.median(loc_machine)
    return out


def print_writes(res: dict[str, Any]) -> None:
    print(f"\n  writes: medians of {res['reps']} fio and {res['dd_reps']} dd pairs; ratio = "
          "replicated / local, median (min-max) of each pair's ratio")  # fmt: skip
    print(f"  {'':34}{'local':>10}{'replicated':>12}{'ratio':>8}{'(min-max)':>13}  goal")
    for key, label in ROWS:
        m = res["metrics"][key]
        goal = ""
        if key in GOALS:
            op, g = GOALS[key]
            ok = m["ratio"] >= g if op == ">=" else m["ratio"] <= g
            goal = f"{op} {g}x: {'met' if ok else 'NOT met'}"
        print(f"  {label:34}{m['local']:10.0f}{m['replicated']:12.0f}{m['ratio']:7.2f}x"
              f"  ({m['ratio_min']:.2f}-{m['ratio_max']:.2f})  {goal}")  # fmt: skip
    cpu = res["cpu_replicated"]
    print(f"\n  CPU while replicating (medians): {'ms / MiB (dd)':>14}{'µs / 4k write+fsync':>21}"
          f"{'page faults / MiB':>19}")  # fmt: skip
    for who in ("node1 data plane", "node1 agent", "node2 data plane", "node2 agent", "machine"):
        label = "whole machine (all processes)" if who == "machine" else who
        faults = f"{cpu[who]['faults_per_mib']:19.0f}" if "faults_per_mib" in cpu[who] else ""
        print(f"    {label:32}{cpu[who]['ms_per_mib']:14.2f}{cpu[who]['us_per_op']:21.0f}{faults}")
    print(f"    {'whole machine, writing locally':32}{res['cpu_local_machine_ms_per_mib']:14.2f}")
    print(f"  pair held through the writes: {res['pair_held']}")
    a = res["away"]
    print(f"  peer away (node1 alone, its data plane tracking only): 4 KiB write+fsync "
          f"{a['iops_local']:.0f} -> {a['iops_away']:.0f} IOPS ({a['iops_ratio']:.2f}x of "
          f"local), p50 {a['lat_p50_away']:.0f} µs ({a['lat_p50_ratio']:.2f}x of local): the "
          "FUSE path alone, before any replication")  # fmt: skip


# -- (2) heartbeat lateness ------------------------------------------------------------------
def sample_links_main(seconds: float, pki: Path, targets: list[str]) -> None:
    """(In the client namespace) poll each node's GetStatus every SAMPLE_S for ``seconds``;
    print one JSON line per answer: node, monotonic time, [link, age, received]..."""
    import grpc

    from protos import mirrorpair_pb2 as pb
    from protos import mirrorpair_pb2_grpc as pb_grpc
    from protos.security.credentials import channel_credentials, secure_channel, server_name

    creds = channel_credentials(pki / "ca.pem", pki / "admin.pem", pki / "admin.key")
    lock = threading.Lock()

    def emit(record: dict[str, Any]) -> None:
        with lock:
            print(json.dumps(record), flush=True)

    def poll(node: str, address: str) -> None:
        stub = pb_grpc.AgentStub(secure_channel(address, creds, server_name(node)))
        stub.GetStatus(pb.GetStatusRequest(), timeout=10)  # connected before we start
        with lock:
            print("READY", node, flush=True)
        start.wait()
        tick = time.monotonic()
        end = tick + seconds
        while (now := time.monotonic()) < end:
            try:
                st = stub.GetStatus(pb.GetStatusRequest(), timeout=2)
            except grpc.RpcError as e:
                emit({"node": node, "error": e.code().name})
            else:
                # st.time: the agent's clock when it took the ages, not when we read them
                links = [[x.name, x.last_heard_age_s, x.received] for x in st.links]
                emit({"node": node, "t": st.time, "call": time.monotonic() - now,
                      "links": links})  # fmt: skip
            tick += SAMPLE_S
            time.sleep(max(0.0, tick - time.monotonic()))
            tick = max(tick, time.monotonic() - SAMPLE_S)  # after a slow call: no burst

    start = threading.Event()
    threads = []
    for target in targets:
        node, address = target.split("=", 1)
        threads.append(threading.Thread(target=poll, args=(node, address)))
        threads[-1].start()
    sys.stdin.readline()  # "go"
    start.set()
    for t in threads:
        t.join()
    print("DONE", flush=True)


class LinkSampler:
    """The sampler process (sample_links_main) in the client namespace."""

    def __init__(self, b: Bench, seconds: float) -> None:
        targets = [f"{n}={LAN_IP[n]}:{API_PORT}" for n in ("node1", "node2")]
        argv = [sys.executable, "-m", "benchmarks.agents", "--sample-links", str(seconds),
                str(b.base / "pki"), *targets]  # fmt: skip
        self.proc = b.site.topo.popen("client", argv, cwd=REPO, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert self.proc.stdout is not None and self.proc.stdin is not None
        for _ in targets:
            line = self.proc.stdout.readline()
            if not line.startswith("READY"):
                raise RuntimeError(f"link sampler did not start: {line!r}")
        self.seconds = seconds

    def run(self) -> list[dict[str, Any]]:
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        records = []
        for line in self.proc.stdout:
            if line.startswith("DONE"):
                break
            records.append(json.loads(line))
        self.proc.wait(30)
        return records


def lateness(records: list[dict[str, Any]], pulse_s: float) -> dict[str, Any]:
    """Per receiving node: each heartbeat's gap since the previous one on its link, minus
    the pulse (ms); the longest silence seen (max age) minus the pulse; failed polls."""
    out: dict[str, Any] = {}
    for node in ("node1", "node2"):
        recs = [r for r in records if r["node"] == node]
        gaps: list[float] = []
        multi = 0
        max_age = 0.0
        # "received" counts datagrams: a pulse of many modules is several (split.py), all
        # sent at once. The usual step between two polls that saw a new pulse is one pulse.
        per_pulse = _usual_step(recs)
        last: dict[str, tuple[float, int]] = {}  # link -> (arrival, received)
        for r in recs:
            for link, age, received in r.get("links", []):
                if age < 0:
                    continue  # never heard
                max_age = max(max_age, age)
                arrival = r["t"] - age
                prev = last.get(link)
                if prev is not None and received - prev[1] < per_pulse:
                    continue  # a pulse seen in the middle of its datagrams: wait for all
                if prev is None or received > prev[1]:
                    if prev is not None:
                        if received - prev[1] < 2 * per_pulse:
                            gaps.append(arrival - prev[0])
                        else:
                            multi += 1  # two or more pulses arrived between polls
                    last[link] = (arrival, received)
        late = sorted((g - pulse_s) * 1e3 for g in gaps)
        calls = sorted(r["call"] * 1e3 for r in recs if "call" in r)

        def pct(v: list[float], q: float) -> float:
            return v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")

        out[node] = {
            "heartbeats": len(gaps),
            "multi": multi,
            "late_p50_ms": pct(late, 0.5),
            "late_p99_ms": pct(late, 0.99),
            "late_max_ms": late[-1] if late else float("nan"),
            "max_age_minus_pulse_ms": (max_age - pulse_s) * 1e3,
            "polls": len(recs),
            "failed_polls": sum(1 for r in recs if "error" in r),
            "poll_p50_ms": pct(calls, 0.5),
            "poll_max_ms": calls[-1] if calls else float("nan"),
        }
    return out


def _usual_step(recs: list[dict[str, Any]]) -> int:
    """The most common rise of a link's datagram count between two polls (1 if none)."""
    steps: dict[int, int] = {}
    last: dict[str, int] = {}
    for r in recs:
        for link, age, received in r.get("links", []):
            if age >= 0:
                if link in last and received > last[link]:
                    step = received - last[link]
                    steps[step] = steps.get(step, 0) + 1
                last[link] = received
    return max(steps, key=lambda k: steps[k]) if steps else 1


def wait_all_paired(b: Bench, names: list[str], timeout: float) -> float:
    """Seconds until every module is PRIM/READY on node1 and SECOND/READY on node2."""
    site, t0 = b.site, time.monotonic()
    want = {"node1": ("STATE_PRIM", "READINESS_READY"),
            "node2": ("STATE_SECOND", "READINESS_READY")}  # fmt: skip
    next_report, counts = t0 + 15, {"node1": 0, "node2": 0}
    while True:
        for node in ("node1", "node2"):
            st = site.status(node)
            if st is not None:
                counts[node] = sum(1 for m in st["modules"] if m["name"] in names
                                   and (m["state"], m["readiness"]) == want[node])  # fmt: skip
        if all(c == len(names) for c in counts.values()):
            return time.monotonic() - t0
        now = time.monotonic()
        if now > t0 + timeout:
            raise PairTimeout(
                f"after {timeout:.0f} s only {counts['node1']}/{len(names)} modules PRIM/READY "
                f"on node1 and {counts['node2']}/{len(names)} SECOND/READY on node2; " + diagnose(b)
            )
        if now > next_report:
            print(f"  {now - t0:4.0f} s: {counts['node1']}/{len(names)} PRIM on node1, "
                  f"{counts['node2']}/{len(names)} SECOND on node2")  # fmt: skip
            next_report = now + 15
        time.sleep(1.0)


def diagnose(b: Bench) -> str:
    parts = []
    for node in ("node1", "node2"):
        st = b.site.status(node)
        if st is None:
            parts.append(f"{node} does not answer its status")
            continue
        ages = ", ".join(
            f"{x['name']} " + ("never" if (a := x["last_heard_age_s"]) < 0 else f"{a:.1f} s ago")
            for x in st["links"]
        )
        parts.append(f"{node} last heard its peer: {ages}")
        text = b.site.agent_text(node)
        hits = re.findall(r".*(?:exceeds|heartbeat).*(?:failed|exceeds).*", text)
        if hits:
            parts.append(f"{node} log: {hits[-1].strip()[:300]} ({len(hits)}x)")
    return "; ".join(parts)


def ip_frag(b: Bench, node: str) -> tuple[int, int]:
    """(FragOKs, FragCreates) of the node's network namespace: datagrams fragmented,
    fragments made."""
    lines = [x.split() for x in b.site.topo.exec(node, "cat", "/proc/net/snmp").stdout.splitlines()
             if x.startswith("Ip:")]  # fmt: skip
    ip = dict(zip(lines[0], lines[1], strict=True))
    return int(ip["FragOKs"]), int(ip["FragCreates"])


def writer_argv(dirs: list[Path], seconds: float) -> list[str]:
    """One fio, a job per mount: even ones 4 KiB randwrite + fsync, odd ones 1 MiB
    sequential with an fsync every 8 MiB."""
    argv = ["fio", "--output-format=json", "--ioengine=psync", "--time_based",
            f"--runtime={seconds:.0f}", "--unlink=1"]  # fmt: skip
    for i, d in enumerate(dirs):
        argv += [f"--name=w{i}", f"--directory={d}"]
        if i % 2 == 0:
            argv += ["--rw=randwrite", "--bs=4k", "--size=16m", "--fsync=1"]
        else:
            argv += ["--rw=write", "--bs=1m", "--size=64m", "--fsync=8"]
    return argv


def bench_heartbeats(b: Bench, modules: int, writers: int, seconds: float,
                     pair_timeout: float) -> dict[str, Any]:  # fmt: skip
    site = b.site
    names = [f"m{i:02d}" for i in range(1, modules)]
    dirs = b.add_modules(names)
    names = ["web", *names]
    out: dict[str, Any] = {"modules": modules, "pulse_ms": b.pulse_s * 1e3,
                           "timeout_ms": b.timeout_s * 1e3}  # fmt: skip
    t0 = time.monotonic()
    site.start(timeout=120)
    try:
        out["paired_after_s"] = wait_all_paired(b, names, pair_timeout)
    except PairTimeout as e:
        out["error"] = str(e)
        print(f"  NOT PAIRED: {e}")
        return out
    print(f"  all {modules} modules PRIM/SECOND {out['paired_after_s']:.0f} s after the "
          f"agents started ({time.monotonic() - t0:.0f} s)")  # fmt: skip
    out["data_planes"] = {n: len(site.data_plane_pids(n)) for n in ("node1", "node2")}
    frag0 = {n: ip_frag(b, n) for n in ("node1", "node2")}
    out["idle"] = lateness(LinkSampler(b, seconds).run(), b.pulse_s)
    # Only heartbeats are UDP (the streams are TCP): IP fragments per datagram sent.
    out["heartbeat_fragments"] = {}
    for n in ("node1", "node2"):
        (oks0, creates0), (oks, creates) = frag0[n], ip_frag(b, n)
        oks, creates = oks - oks0, creates - creates0
        out["heartbeat_fragments"][n] = creates / oks if oks else 1

    chosen = dirs[: max(0, min(writers, len(dirs)))]
    sampler = LinkSampler(b, seconds)
    fio = subprocess.Popen([*site.nsenter("node1"), *writer_argv(chosen, seconds + 3)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    time.sleep(1.5)  # the writers are under way
    out["writing"] = lateness(sampler.run(), b.pulse_s)
    stdout, stderr = fio.communicate(timeout=seconds + 120)
    if fio.returncode != 0:
        out["writers_error"] = stderr.strip()[-500:]
    else:
        jobs = json.loads(stdout[stdout.index("{") :])["jobs"]
        out["writers"] = {
            "mounts": len(chosen),
            "mb_s": sum(j["write"]["bw_bytes"] for j in jobs) / 1e6,
            "fsync_iops_4k": sum(j["write"]["iops"] for j in jobs[::2]),
        }
    paired = wait_quick(b, names)
    out["pair_held"] = paired
    return out


def wait_quick(b: Bench, names: list[str]) -> str:
    bad = []
    for node, want in (("node1", "STATE_PRIM"), ("node2", "STATE_SECOND")):
        st = b.site.status(node)
        if st is None:
            return f"{node} does not answer"
        bad += [f"{m['name']}@{node} {m['state']}" for m in st["modules"]
                if m["name"] in names and m["state"] != want]  # fmt: skip
    return "yes" if not bad else "no: " + ", ".join(bad[:8])


def print_heartbeats(res: dict[str, Any]) -> None:
    print(f"\n  heartbeat lateness, {res['modules']} modules (pulse {res['pulse_ms']:.0f} ms, "
          f"peer dead after {res['timeout_ms']:.0f} ms of silence)")  # fmt: skip
    if "error" in res:
        print(f"  not measured: {res['error']}")
        return
    frags = res["heartbeat_fragments"]
    print("  heartbeat datagram: " + ", ".join(
        f"{n}'s {'one packet' if f <= 1 else f'{f:.0f} IP fragments'} (MTU 1500)"
        for n, f in frags.items()))  # fmt: skip
    w = res.get("writers")
    if w:
        print(f"  writing: fio into {w['mounts']} mounts, {w['mb_s']:.0f} MB/s in all, "
              f"{w['fsync_iops_4k']:.0f} 4k write+fsync/s")  # fmt: skip
    elif "writers_error" in res:
        print(f"  writers failed: {res['writers_error']}")
    print(f"  {'heard by':10}{'phase':9}{'heartbeats':>11}{'late p50':>10}{'p99':>8}{'max':>8}"
          f"{'max silence-pulse':>19}{'poll p50/max (ms)':>19}{'failed':>8}")  # fmt: skip
    for node in ("node1", "node2"):
        for phase in ("idle", "writing"):
            if phase not in res:
                continue
            r = res[phase][node]
            print(f"  {node:10}{phase:9}{r['heartbeats']:11d}{r['late_p50_ms']:10.0f}"
                  f"{r['late_p99_ms']:8.0f}{r['late_max_ms']:8.0f}"
                  f"{r['max_age_minus_pulse_ms']:19.0f}"
                  f"{r['poll_p50_ms']:11.0f}/{r['poll_max_ms']:<7.0f}"
                  f"{r['failed_polls']:8d}")  # fmt: skip
    print(f"  pair held through the writes: {res.get('pair_held')}")


# -- main ----------------------------------------------------------------------------------
def run_placement(placement: str, args: argparse.Namespace) -> dict[str, Any]:
    res: dict[str, Any] = {"placement": PLACEMENTS[placement]}
    print(f"\n=== secondary's copy: {PLACEMENTS[placement]}")
    if args.reps > 0:
        with Bench(placement, f"{placement}-web", args.keep) as b:
            res["node2_data"] = b.where
            print(f"  node2's data dir: {b.where}")
            res["writes"] = bench_writes(b, args.reps, args.fio_runtime, args.dd_reps, args.dd_mib)
        res["writes"]["log_notes"] = b.notes
        print_writes(res["writes"])
    if placement in args.hb_placements and args.modules > 0:
        print(f"\n  heartbeats: a site with {args.modules} modules ...")
        with Bench(placement, f"{placement}-hb", args.keep) as b:
            res["heartbeat"] = bench_heartbeats(b, args.modules, args.writers,
                                                args.hb_seconds, args.pair_timeout)  # fmt: skip
        res["heartbeat"]["log_notes"] = b.notes
        print_heartbeats(res["heartbeat"])
    for what in ("writes", "heartbeat"):
        notes = res.get(what, {}).get("log_notes")
        if notes:
            print(f"\n  warnings and errors in the logs ({what} site):")
            for n in notes[:12]:
                print(f"    {n}")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sample-links", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true",
                    help="2 fio pairs of 3 s, 3 dd pairs of 128 MiB, 16 modules, 8 s "
                    "heartbeat phases (about 2 minutes)")  # fmt: skip
    ap.add_argument(
        "--reps", type=int, help="local+replicated fio pairs (default 3; 0: no writes site)"
    )
    ap.add_argument("--fio-runtime", type=float, help="seconds per fio run (default 10)")
    ap.add_argument("--dd-reps", type=int, help="local+replicated dd pairs (default 6)")
    ap.add_argument("--dd-mib", type=int, help="MiB per sequential run (default 512)")
    ap.add_argument("--placements", default="shared,own",
                    help="where the secondary's copy lives: shared, own, or both "
                    "(default)")  # fmt: skip
    ap.add_argument("--modules", type=int,
                    help="modules of the heartbeat site (default 64; 0: skip it)")  # fmt: skip
    ap.add_argument("--hb-placements", help="placements that get the heartbeat site (default: "
                    "all of --placements)")  # fmt: skip
    ap.add_argument("--writers", type=int, default=8, help="mounts written to (default 8)")
    ap.add_argument("--hb-seconds", type=float, help="seconds per heartbeat phase (default 30)")
    ap.add_argument("--pair-timeout", type=float,
                    help="seconds to wait for every module to pair (default 120 + 4 per "
                    "module)")  # fmt: skip
    ap.add_argument("--keep", action="store_true", help="keep the site directories (logs)")
    args = ap.parse_args()
    if args.sample_links:
        seconds, pki, *targets = args.sample_links
        return sample_links_main(float(seconds), Path(pki), targets)
    quick = {"reps": 2, "fio_runtime": 3, "dd_reps": 3, "dd_mib": 128, "modules": 16,
             "hb_seconds": 8}  # fmt: skip
    full = {"reps": 3, "fio_runtime": 10, "dd_reps": 6, "dd_mib": 512, "modules": 64,
            "hb_seconds": 30}  # fmt: skip
    for k, v in (quick if args.quick else full).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.pair_timeout is None:
        args.pair_timeout = 120 + 4 * args.modules
    placements = [p for p in args.placements.split(",") if p]
    args.hb_placements = (args.hb_placements or args.placements).split(",")
    if set(placements) - set(PLACEMENTS):
        ap.error(f"--placements: {', '.join(PLACEMENTS)}")
    if os.geteuid() != 0:
        sys.exit("needs root (network and mount namespaces, FUSE, loop devices)")
    if args.reps and args.dd_reps < 1:
        ap.error(
            "--dd-reps must be at least 1 when --reps is not 0 (the CPU per MiB comes from dd)"
        )
    for tool in ("fio", "dd", "nsenter", "unshare", "mkfs.ext4", "losetup", "findmnt"):
        if shutil.which(tool) is None:
            sys.exit(f"needs {tool}")
    # SIGTERM unwinds like Ctrl-C: every with-block below cleans up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cleanup_stale()
    load = os.getloadavg()
    machine = {"cpus": os.cpu_count(), "loadavg_at_start": [round(x, 2) for x in load]}
    print(f"{os.cpu_count()} CPUs, load average {load[0]:.2f} at start; "
          f"{args.reps} fio pairs of {args.fio_runtime:g} s, {args.dd_reps} dd pairs of "
          f"{args.dd_mib} MiB; heartbeat "
          f"site: {args.modules} modules, {args.writers} written, {args.hb_seconds:g} s per "
          "phase")  # fmt: skip
    results = {p: run_placement(p, args) for p in placements}
    print(json.dumps({"benchmark": "agents", "machine": machine, "args": vars(args),
                      "placements": results}, default=str))  # fmt: skip


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the with-blocks have cleaned up on the way out
        sys.exit("interrupted")
