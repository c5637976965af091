"""Module replication benchmark (DESIGN §9): the real ModuleReplication, in one run.

(1) Writes: a plain local directory vs the FUSE mount of a primary in REPLICATE mode,
    whose secondary (StreamReceiver + ModuleReplication in SECOND role) is another process
    on loopback TLS:
      dd if=/dev/zero bs=1M count=512 conv=fsync                              -> MB/s
      fio --rw=randwrite --bs=4k --size=64m --fsync=1 --runtime=10 --time_based
          --ioengine=psync                          -> IOPS, write and fsync p50/p99
(2) Resync of 1 % of the zones of a 1 GiB file changed while the secondary was away:
    the bitmap path, and the hash path (fullsync), each vs `rsync -a --inplace
    --no-whole-file --ignore-times` (its delta algorithm, as across a network) of the
    same change.
Everything is in the page cache for every contender; the two copies are directories
on the same disk, so the secondary's writes compete with the primary's.

    sudo .venv/bin/python benchmarks/replication.py [--size-mib 1024] [--reps 1] [--quick]
                                                    [--writes-only] [--dir /dev/shm]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.iobench import MiB, dd_fsync, fio_randwrite  # noqa: E402
from node_agent.config.model import NodePaths  # noqa: E402
from node_agent.malloc_tuning import keep_large_buffers  # noqa: E402
from node_agent.replication.module_repl import ModuleReplication  # noqa: E402
from node_agent.replication.stream.listener import RouteListener  # noqa: E402
from node_agent.replication.stream.receiver import StreamReceiver  # noqa: E402
from protos.security.ca import create_ca, issue_certificate  # noqa: E402
from tests.integration.repl_rig import deliver_to  # noqa: E402


def paths(pki: Path, name: str) -> NodePaths:
    return NodePaths(pki, pki / "ca" / "ca.pem", pki / "certs" / f"{name}.pem",
                     pki / "certs" / f"{name}.key")  # fmt: skip


# -- the secondary, in its own process -------------------------------------------------------
def secondary_main(work: Path, early_flush: bool) -> None:
    n2 = work / "n2"
    mr = ModuleReplication("bench", [work / "unused"], n2 / "copy", n2 / "track", "node2",
                           "node1", "127.0.0.1", 0, paths(work / "pki", "node2"),
                           early_flush=early_flush)  # fmt: skip
    mr.become_secondary(())
    rx = StreamReceiver(
        node_id="node2", peer="node1", tls=paths(work / "pki", "node2"),
        resolve=lambda m: mr.secondary_applier() if m == "bench" else None,
        handle_request=lambda m, body: mr.handle_request(body),
    )  # fmt: skip
    listener = RouteListener("127.0.0.1", 0, deliver_to(rx))
    loop = asyncio.new_event_loop()
    print(f"PORT {loop.run_until_complete(listener.start())}", flush=True)
    loop.run_forever()  # until the parent kills us


class Secondary:
    def __init__(self, work: Path, early_flush: bool, default_malloc: bool = False) -> None:
        flags = ([] if early_flush else ["--no-early-flush"]) + (
            ["--default-malloc"] if default_malloc else []
        )
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--secondary", str(work), *flags],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line.startswith("PORT "):
            raise RuntimeError(f"secondary did not start: {line!r}")
        self.port = int(line.split()[1])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Primary:
    def __init__(
        self, work: Path, port: int, mount_options: dict[str, Any], early_flush: bool
    ) -> None:
        self.root, self.mnt = work / "n1" / "copy", work / "mnt"
        self._events: list[str] = []
        self._cond = threading.Condition()
        self.mr = ModuleReplication(
            "bench", [self.mnt], self.root, work / "n1" / "track", "node1", "node2",
            "127.0.0.1", port, paths(work / "pki", "node1"), request_timeout_s=600,
            on_replicating=lambda: self._event("replicating"),
            on_resync_failed=lambda r: self._event(f"failed: {r}"),
            on_degraded=self._held, mount_options=mount_options, early_flush=early_flush,
        )  # fmt: skip
        self.gen = 1
        self.mr.become_primary("g1", ("g1",))

    def _event(self, what: str) -> None:
        with self._cond:
            self._events.append(what)
            self._cond.notify_all()

    def _held(self, reason: str, hold: str, requested: bool) -> None:
        # The engine's write gate, once the peer acknowledged it is outdated.
        self.mr.resolve_hold(hold, True)

    def pair(self, peer_gen: str | None, fullsync: bool = False) -> tuple[float, dict[str, Any]]:
        """Resync (as the engine would start it); (seconds until REPLICATE, status)."""
        with self._cond:
            self._events.clear()
        t0 = time.perf_counter()
        self.mr.peer_is_secondary(peer_gen, transient=True, fullsync=fullsync)
        with self._cond:
            self._cond.wait_for(lambda: self._events, timeout=3600)
        took = time.perf_counter() - t0
        if self._events != ["replicating"]:
            raise RuntimeError(f"pairing failed: {self._events}")
        return took, self.mr.status()

    def away(self) -> str:
        """The secondary leaves (heartbeat lost): TRACK, a new generation; its last one."""
        self.mr.peer_gone()
        self.gen += 1
        history = tuple(f"g{i}" for i in range(1, self.gen + 1))
        self.mr.generation_changed(history[-1], history)
        return history[-2]


# -- (1) writes ----------------------------------------------------------------------------
def bench_writes(local: Path, p: Primary, reps: int, runtime: int) -> None:
    """Interleaved (every contender sees the same machine state): the plain directory,
    the mount in REPLICATE mode, the mount with no peer (TRACK: FUSE and the bitmap).
    The local and replicated runs of each tool go back to back."""
    runs: dict[tuple[str, str], list[Any]] = {}
    for _ in range(reps):
        for where in ("local", "replicated"):
            mbs = dd_fsync(local if where == "local" else p.mnt)
            runs.setdefault(("dd", where), []).append({"mbs": mbs})
        for where in ("local", "replicated"):
            res = fio_randwrite(local if where == "local" else p.mnt, runtime)
            runs.setdefault(("fio", where), []).append(res)
        last = p.away()
        runs.setdefault(("dd", "fuse only"), []).append({"mbs": dd_fsync(p.mnt)})
        runs.setdefault(("fio", "fuse only"), []).append(fio_randwrite(p.mnt, runtime))
        p.pair(last)  # resyncs what the runs left (they delete their files)

    def med(tool: str, where: str, field: str) -> float:
        return statistics.median(r[field] for r in runs[(tool, where)])

    print(f"\n(1) writes (medians of {reps}); ratio = replicated / local")
    print(f"{'workload':40}{'local':>10}{'fuse only':>11}{'replicated':>12}{'ratio':>8}")
    rows = [("dd", "mbs", "dd bs=1M count=512 conv=fsync (MB/s)"),
            ("fio", "iops", "fio 4k randwrite fsync=1: IOPS"),
            ("fio", "p50", "  write completion p50 (µs)"),
            ("fio", "p99", "  write completion p99 (µs)"),
            ("fio", "sync_p50", "  fsync p50 (µs)"),
            ("fio", "sync_p99", "  fsync p99 (µs)")]  # fmt: skip
    for tool, field, label in rows:
        a, t, b = (med(tool, w, field) for w in ("local", "fuse only", "replicated"))
        print(f"{label:40}{a:10.0f}{t:11.0f}{b:12.0f}{(b / a if a else 0):7.2f}x")
    # The local dd mostly measures this machine's disk, which drifts from minute to
    # minute: each rep's ratio (local and replicated minutes apart, not a run apart).
    pairs = [
        r["mbs"] / loc["mbs"]
        for loc, r in zip(runs[("dd", "local")], runs[("dd", "replicated")], strict=True)
    ]
    print(f"dd ratio of each rep: {', '.join(f'{x:.2f}' for x in pairs)}; "
          f"median {statistics.median(pairs):.2f}x")  # fmt: skip


# -- (2) resync ----------------------------------------------------------------------------
def random_file(path: Path, size: int, seed: int) -> None:
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        for _ in range(size // MiB):
            f.write(rnd.randbytes(MiB))


def change_zones(path: Path, zones: list[int], seed: int) -> None:
    rnd = random.Random(seed)
    fd = os.open(path, os.O_WRONLY)
    try:
        for z in zones:
            os.pwrite(fd, rnd.randbytes(MiB), z * MiB)
        os.fsync(fd)
    finally:
        os.close(fd)


def rsync(src: Path, dst_dir: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    # --ignore-times: the change is seconds old here; a real one is older than rsync's
    # one-second mtime granularity, which would send it to the delta algorithm anyway
    res = subprocess.run(["rsync", "-a", "--inplace", "--no-whole-file", "--ignore-times",
                          "--stats", str(src), f"{dst_dir}/"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    took = time.perf_counter() - t0
    literal = re.search(r"Literal data: ([\d,.]+)", res.stdout)
    return took, int(literal.group(1).replace(",", "").replace(".", "")) if literal else -1


def bench_resync(p: Primary, work: Path, size: int) -> None:
    n_zones = size // MiB
    big, theirs = p.root / "0" / "big", work / "n2" / "copy" / "0" / "big"
    scratch = work / "rsync"
    scratch.mkdir()
    rnd = random.Random(42)
    rows = []
    for label, fullsync in [("bitmap path", False), ("hash path (fullsync)", True)]:
        last = p.away()
        zones = rnd.sample(range(n_zones), max(1, n_zones // 100))
        # tracked (the secondary is away); seeds unlike the file's, or rsync finds the
        # "new" blocks elsewhere in the old file
        change_zones(p.mnt / "big", zones, seed=1000 + len(rows))
        shutil.copy2(theirs, scratch / "big")  # rsync gets the same "before"
        took, st = p.pair(last, fullsync=fullsync)
        assert st["bytes_sent"] == len(zones) * MiB, st
        r_took, r_literal = rsync(big, scratch)
        rows.append((label, took, st, r_took, r_literal, len(zones)))
    print(f"\n(2) resync of 1 % of a {size // MiB} MiB file ({rows[0][5]} zones of 1 MiB) "
          "vs rsync --inplace --no-whole-file")  # fmt: skip
    print(f"{'':24}{'ours (s)':>10}{'sent MiB':>10}{'rsync (s)':>11}{'literal MiB':>13}"
          f"{'rsync/ours':>12}")  # fmt: skip
    for label, took, st, r_took, r_literal, _ in rows:
        print(f"{label:24}{took:10.2f}{st['bytes_sent'] / MiB:10.1f}{r_took:11.2f}"
              f"{r_literal / MiB:13.1f}{r_took / took:11.1f}x")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--secondary", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--fio-runtime", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="256 MiB file, 3 s fio runs")
    ap.add_argument("--dir", default="/var/tmp",
                    help="where the local directory and both copies live (/dev/shm: no "
                    "disk, what is left is the CPU and the hand-offs)")  # fmt: skip
    ap.add_argument("--writes-only", action="store_true",
                    help="(1) only: no resync measurements (a 1 MiB file to pair)")  # fmt: skip
    ap.add_argument("--secondary-on", choices=("disk", "tmpfs"), default="disk",
                    help="where the secondary's copy lives: the same disk as the primary's "
                    "(both copies share its bandwidth: 0.5x is the ceiling) or tmpfs (a "
                    "device of its own, as on a real pair)")  # fmt: skip
    ap.add_argument(
        "--no-writeback",
        action="store_true",
        help="mount without the kernel writeback cache (every write() synchronous)",
    )
    ap.add_argument("--no-early-flush", action="store_true",
                    help="let both copies' page caches hold the data until fsync, instead "
                    "of starting writeback as it arrives")  # fmt: skip
    ap.add_argument(
        "--default-malloc",
        action="store_true",
        help="leave glibc's malloc thresholds alone (the agent tunes them)",
    )
    args = ap.parse_args()
    if not args.default_malloc:
        keep_large_buffers()  # as mirrorpair-agent does
    if args.secondary:
        return secondary_main(args.secondary, not args.no_early_flush)
    if args.quick:
        args.size_mib, args.fio_runtime = 256, 3
    if args.writes_only:
        args.size_mib = 1
    for tool in ("dd", "fio", "rsync"):
        if shutil.which(tool) is None:
            sys.exit(f"needs {tool}")
    work = Path(tempfile.mkdtemp(prefix="mp-bench-", dir=args.dir))
    elsewhere = None
    if args.secondary_on == "tmpfs":
        elsewhere = Path(tempfile.mkdtemp(prefix="mp-bench-n2-", dir="/dev/shm"))
        (work / "n2").symlink_to(elsewhere)
    print(f"in {args.dir}; secondary's copy on {args.secondary_on}; kernel writeback cache "
          f"{'off' if args.no_writeback else 'on'}; early flush "
          f"{'off' if args.no_early_flush else 'on'}; malloc thresholds "
          f"{'default' if args.default_malloc else 'tuned'}")  # fmt: skip
    sec = p = None
    try:
        create_ca(work / "pki" / "ca", "bench")
        for node in ("node1", "node2"):
            issue_certificate(work / "pki" / "ca", node, work / "pki" / "certs")
        size = args.size_mib * MiB
        for side in ("n1", "n2"):
            (work / side / "copy" / "0").mkdir(parents=True, exist_ok=True)
        random_file(work / "n1" / "copy" / "0" / "big", size, seed=1)
        shutil.copy2(work / "n1" / "copy" / "0" / "big", work / "n2" / "copy" / "0" / "big")
        (work / "local").mkdir()
        sec = Secondary(work, not args.no_early_flush, args.default_malloc)
        p = Primary(work, sec.port, {"writeback_cache": not args.no_writeback},
                    not args.no_early_flush)  # fmt: skip
        took, st = p.pair(None)  # no record yet; same size and mtime: nothing to compare
        print(f"first pairing (identical {args.size_mib} MiB file, no record): {took:.2f} s, "
              f"{st['bytes_sent']} B sent")  # fmt: skip
        bench_writes(work / "local", p, args.reps, args.fio_runtime)
        if not args.writes_only:
            bench_resync(p, work, size)
    finally:
        if p is not None:
            p.mr.stop_primary()
        if sec is not None:
            sec.stop()
        shutil.rmtree(work, ignore_errors=True)
        if elsewhere is not None:
            shutil.rmtree(elsewhere, ignore_errors=True)


if __name__ == "__main__":
    main()
