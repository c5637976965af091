"""benchmarks/agents.py (2): heartbeat lateness with many modules replicating."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.agents_site import REPO, SAMPLE_S, Bench, PairTimeout  # sets the path first
from tests.integration.cluster_netns import API_PORT
from tests.integration.netns import LAN_IP


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
