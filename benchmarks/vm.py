"""A VM module's disk and failover, measured (issue 11, "Measure"), as ratios against a
baseline from the same run.

Inside the guest (node_agent/demo_vm, its bench mode): MB MiB of 1 MiB O_DIRECT writes
then an fsync, and SYNCS 4 KiB O_DIRECT writes each followed by an fsync (a flush QEMU
turns into an fdatasync of the image), timed by the guest's clock. Baseline: the same
guest with its disk in a plain local directory (a libvirtd of the benchmark's own).
Replicated: the guest as a vm module of two real agents in network and mount namespaces
(tests/integration/site.py), its disk in the replicated directory on the primary's
mount, every flush acknowledged once the secondary applied it. Both run under QEMU's
software emulation here (TCG: this machine's KVM boots no normal guest), whose own cost
per write is large; the ratios are of this guest on this machine.

Then failover: SIGKILL of the primary's agent, application and QEMU, split into
detection (until the survivor is ALONE), disk ready (its mount), domain started, and
guest boot (until the guest's first console line): the test guest has no network, so
"answers" is its serial console, not a VIP.

    sudo .venv/bin/python -m benchmarks.vm [--reps 3] [--mb 32] [--syncs 100]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from node_agent.demo_vm.domain import install_vm
from node_agent.demo_vm.guest import build_guest
from tests.integration.netns import Topology, cleanup_stale
from tests.integration.site import Site
from tests.integration.test_site_vm import NAME, make_vm_site
from tests.vm.console import ConsoleLog
from tests.vm.libvirtd import Libvirtd

BENCH = r"^BENCH mb=(\d+) seq_s=([\d.]+) syncs=(\d+) sync_s=([\d.]+)$"


def parse(m: re.Match[str]) -> tuple[float, float]:
    """(MB/s of the sequential writes, synchronous 4 KiB writes per second)."""
    mb, seq_s, syncs, sync_s = int(m[1]), float(m[2]), int(m[3]), float(m[4])
    return mb * 1.048576 / max(seq_s, 0.01), syncs / max(sync_s, 0.01)


def local(tmp: Path, cmdline: str, reps: int) -> list[tuple[float, float]]:
    guest = build_guest()
    out = []
    with Libvirtd(tmp / "libvirt") as lv:
        vm = install_vm(tmp / "local-vm", guest, name="bench", cmdline=cmdline,
                        console_log=tmp / "local-console.log")  # fmt: skip
        log, conn = ConsoleLog(vm.console_log), lv.connect()
        for _ in range(reps):
            mark = log.mark()
            dom = conn.createXML(vm.xml, 0)
            out.append(parse(log.wait_for(BENCH, since=mark, timeout=600)))
            dom.destroy()
        conn.close()
    return out


def replicated(tmp: Path, cmdline: str, reps: int) -> tuple[list[tuple[float, float]], dict]:
    guest = build_guest()
    with Topology() as topo, Site(topo, tmp / "site") as site:
        s = make_vm_site(site, guest, cmdline, maxloop=3)
        site.start()
        site.wait_module("node1", NAME, "PRIM", "READY", timeout=120)
        site.wait_module("node2", NAME, "SECOND", "READY", timeout=120)
        out, mark = [], 0
        for i in range(reps):
            m = s.log.wait_for(BENCH, since=mark, timeout=600)
            out.append(parse(m))
            mark = s.log.mark()
            if i + 1 < reps:  # a new boot runs the bench again
                r = site.cli("restart", NAME)
                assert r.returncode == 0, r.stdout + r.stderr
        return out, failover(site, s)


def failover(site: Site, s) -> dict:  # noqa: ANN001 (a VmSite)
    mark = s.log.mark()
    wall0, t0 = time.time(), time.monotonic()
    site.kill_agent("node1")
    site.kill_app("node1")
    s.lv["node1"].kill_qemu(NAME)
    s.log.wait_for(r"^UP$", since=mark, timeout=300, alive=None)
    booted = time.monotonic() - t0
    m = site.module_named("node2", NAME) or {}
    logs = site.logs_of("node2", NAME)

    def at(text: str) -> float:
        return min(
            (
                float(e["time"]) - wall0
                for e in logs
                if text in e["message"] and float(e["time"]) >= wall0
            ),
            default=float("nan"),
        )

    return {"detection": float(m.get("state_since", 0)) - wall0,
            "disk ready": at("mounted"), "domain started": at("domain rec started"),
            "guest boot (first console line)": booted}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--mb", type=int, default=32)
    p.add_argument("--syncs", type=int, default=100)
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("vm benchmark: needs root (namespaces, FUSE, libvirtd)", file=sys.stderr)
        return 2
    cleanup_stale()
    cmdline = build_guest().cmdline("bench", mb=args.mb, syncs=args.syncs)
    with tempfile.TemporaryDirectory(prefix="mp-bench-vm-") as tmp:
        base = local(Path(tmp), cmdline, args.reps)
        repl, times = replicated(Path(tmp), cmdline, args.reps)
    med = lambda rows, i: statistics.median(r[i] for r in rows)  # noqa: E731
    print(f"guest disk writes ({args.reps} boots each; {args.mb} MiB sequential, "
          f"{args.syncs} synchronous 4 KiB writes; TCG)")  # fmt: skip
    print(f"{'':28}{'local dir':>12}{'replicated':>12}{'ratio':>8}")
    for i, what in ((0, "sequential MB/s"), (1, "sync 4 KiB writes/s")):
        lo, re_ = med(base, i), med(repl, i)
        print(f"  {what:26}{lo:>12.1f}{re_:>12.1f}{re_ / lo:>7.2f}x")
    print(
        "  each boot: local "
        + ", ".join(f"{a:.1f}/{b:.0f}" for a, b in base)
        + "; replicated "
        + ", ".join(f"{a:.1f}/{b:.0f}" for a, b in repl)
    )
    print("failover of the VM (SIGKILL of node1's agent, app and QEMU), seconds after it:")
    for what, t in times.items():
        print(f"  {what:34}{t:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
