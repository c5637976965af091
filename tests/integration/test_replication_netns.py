"""Replication with real agents on two network namespaces (issue 3; DESIGN §5, §10).

Module ``web`` replicates ``<base>/<node>/mnt`` (see tests/integration/repl_netns.py:
agents in their node's network namespace but the machine's mount namespace, so the test,
its writers and fio use the agents' FUSE mounts directly). Faults are injected while an
application writes with fsync on the primary's mount; afterwards every write the
application saw acknowledged must be on the node that serves, byte for byte:

- the writer log (repl_netns.Writer): records logged only once fsync returned, checked
  against the survivor's file by CRC;
- fio with ``--verify=crc32c``: written with ``--direct=1 --fsync=1`` (each completed
  write went through FUSE, hence through replication, before fio counted it) and
  ``verify_state_save``, re-read on the survivor with ``--verify_only
  --verify_state_load=1`` (only what fio completed before the fault is verified).

Resyncs are observed through the primary's log line "... is up to date (RECORD, N bytes
sent)"; a resync is slowed with tc on the primary's LAN port when a test needs to kill a
node in the middle of one. Waits are bounded polls.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import require, require_binary
from tests.integration.cluster_netns import MODULE, REPO, TIMEOUT_MS
from tests.integration.netns import Topology
from tests.integration.repl_netns import (
    MiB,
    ReplCluster,
    Writer,
    check_log,
    diff_trees,
    fio,
    fio_report,
)

pytestmark = pytest.mark.root

TIMEOUT_S = TIMEOUT_MS / 1000
FAILOVER_S = TIMEOUT_S + 10.0  # peer timeout + mount + app start, with room for load
PAIR_S = 60.0  # a resync may wait RETRY_PAIRING_S (5 s) before it starts
BIG = ("--rw=write", "--bs=1m", "--size=256m", "--verify=crc32c")  # fio's resync payload
SLOW = "400mbit"  # 256 MiB then take >= 5 s to resync

MakeCluster = Callable[..., ReplCluster]


@pytest.fixture
def make_cluster(topology: Topology, tmp_path: Path) -> Iterator[MakeCluster]:
    require(os.path.exists("/dev/fuse"), "needs /dev/fuse (apt-get install fuse3)")
    for binary in ("fusermount3", "fio", "nsenter", "tc", "ping", "arping"):
        require_binary(binary)
    made: list[ReplCluster] = []

    def make(**kw: object) -> ReplCluster:
        c = ReplCluster(topology, tmp_path / "cluster", **kw)  # type: ignore[arg-type]
        made.append(c)
        c.start()
        c.wait_pair("node1", timeout=30)
        assert os.path.ismount(c.mnt("node1")) and not os.path.ismount(c.mnt("node2"))
        return c

    yield make
    for c in made:
        c.close()


def assert_log_on(c: ReplCluster, root: Path, log: Path, at_least: int) -> int:
    n, problems = check_log(root, log)
    assert n >= at_least, f"only {n} acknowledged records"
    assert not problems, f"{len(problems)} acknowledged writes missing on {root}: {problems[:8]}"
    return n


def assert_identical(c: ReplCluster) -> None:
    assert not (d := diff_trees(c.copy("node1"), c.copy("node2"))), d[:10]


def verify_big(path: Path) -> None:
    r = fio(path, *BIG, "--verify_only")
    assert r["rc"] == 0 and r["job"]["read"]["io_bytes"] == 256 * MiB, r


def kill_mid_resync(c: ReplCluster, kill: Callable[[], None]) -> None:
    """node2 returns while node1's LAN is capped; ``kill`` runs once a fifth is sent."""
    done = len(c.resyncs("node1"))
    c.shape("node1", SLOW)
    c.start("node2")

    def mid() -> dict | None:
        p = c.resync_progress("node1") or {}
        total = int(p.get("bytes_total", 0))
        return p if p.get("active") and total > 0 and int(p["bytes_done"]) > total // 5 else None

    c.wait_for(mid, "node1 resyncing node2", PAIR_S, step=0.05)
    kill()
    c.shape("node1", None)
    assert len(c.resyncs("node1")) == done, "the resync ended before the kill"


# -- 1. acknowledged writes survive each fault ----------------------------------------------
def test_kill9_of_primary_agent_acknowledged_writes_are_on_the_survivor(
    make_cluster: MakeCluster, tmp_path: Path
) -> None:
    c = make_cluster()
    state = tmp_path / "fio"
    state.mkdir()
    w = Writer(c, c.mnt("node1") / "w.dat", tmp_path / "w.log")
    args = ["--rw=write", "--bs=64k", "--size=256m", "--verify=crc32c", "--do_verify=0",
            "--direct=1", "--fsync=1", "--verify_state_save=1"]  # fmt: skip
    fio_out = tmp_path / "fio.json"
    with open(fio_out, "w") as out:
        job = c.spawn(["fio", "--name=w", f"--filename={c.mnt('node1')}/fio.dat",
                       "--output-format=json", *args], cwd=state, stdout=out)  # fmt: skip

    def fio_writing() -> bool:  # past its layout: verify headers (magic 0xacca) on node2
        with contextlib.suppress(OSError), open(c.copy("node2") / "fio.dat", "rb") as fh:
            return fh.read(2) == b"\xca\xac"
        return False

    c.wait_for(lambda: w.acked() >= 300 and fio_writing(), "300 records and fio writing", 60)
    c.kill_agent("node1")  # the FUSE server dies with it: the mount is dead
    assert w.wait_exit(30) == 0 and w.errors(), "the writer should have seen its mount die"
    assert job.wait(60) != 0
    written = fio_report(fio_out.read_text())["write"]["io_bytes"]
    assert written > 0 and list(state.glob("*verify.state"))

    c.wait_state("node2", "ALONE", "READY", timeout=FAILOVER_S)
    assert os.path.ismount(c.mnt("node2"))
    assert_log_on(c, c.mnt("node2"), w.log, 300)
    r = fio(c.mnt("node2") / "fio.dat", *args[:4], "--verify_only", "--verify_state_load=1",
            cwd=state)  # fmt: skip
    assert r["rc"] == 0 and r["job"]["read"]["io_bytes"] == written, r

    c.crash("node1")  # its app, VIP and dead mount
    c.start("node1")
    c.wait_pair("node2", timeout=PAIR_S)
    assert_identical(c)


def test_both_links_cut_acknowledged_writes_are_on_the_survivor(
    make_cluster: MakeCluster, tmp_path: Path
) -> None:
    c = make_cluster(witness=True)
    w = Writer(c, c.mnt("node1") / "w.dat", tmp_path / "w.log")
    c.wait_for(lambda: w.acked() >= 300, "300 acknowledged records", 60)
    c.topo.cut("direct")
    c.topo.cut("lan:node1")  # heartbeats, replication path and witness, all at once
    c.wait_state("node2", "ALONE", "READY", timeout=FAILOVER_S)
    c.wait_state("node1", "WAIT", "NOT_READY", via="node1", timeout=FAILOVER_S)
    assert w.wait_exit(60) == 0 and w.errors()
    # node1 held what node2 never got, then failed it (EIO) once it stepped down.
    assert "held writes fenced (EIO)" in c.agent_text("node1"), c.agent_text("node1")[-3000:]
    try:
        assert_log_on(c, c.mnt("node2"), w.log, 300)
    finally:
        c.topo.restore("lan:node1")
        c.topo.restore("direct")
        c.wait_pair("node2", timeout=PAIR_S)
        assert_identical(c)


def test_swap_while_writing_acknowledged_writes_are_on_the_new_primary(
    make_cluster: MakeCluster, tmp_path: Path
) -> None:
    # The old primary keeps replicating while its resource stops and its mount goes (a
    # swap needs no resync: the new primary must have everything it acknowledged).
    c = make_cluster()
    w = Writer(c, c.mnt("node1") / "w.dat", tmp_path / "w.log")
    c.wait_for(lambda: w.acked() >= 200, "200 acknowledged records", 60)
    c.cli_ok("swap", MODULE, "--node", "node1", "--yes")
    c.wait_pair("node2", timeout=PAIR_S)
    assert w.wait_exit(60) == 0 and w.errors()  # its mount left with the role
    # PRIM Ready follows the peer's view; the stream comes up a moment later
    c.wait_for(lambda: "no resync needed" in c.agent_text("node2"), "direct pairing", 10)
    assert not c.resyncs("node2")  # roles exchanged, no resync
    assert_log_on(c, c.mnt("node2"), w.log, 200)
    assert_identical(c)


def test_secondary_killed_mid_resync_resyncs_again(
    make_cluster: MakeCluster, tmp_path: Path
) -> None:
    c = make_cluster()
    c.kill_agent("node2")
    c.wait_state("node1", "ALONE", "READY", timeout=FAILOVER_S)
    r = fio(c.mnt("node1") / "big.dat", *BIG, "--do_verify=0", "--end_fsync=1")
    assert r["rc"] == 0, r
    w = Writer(c, c.mnt("node1") / "w.dat", tmp_path / "w.log")  # on through everything
    kill_mid_resync(c, lambda: c.kill_agent("node2"))
    c.start("node2")
    c.wait_pair("node1", timeout=PAIR_S)
    assert w.acked() > 0 and w.stop() == 0 and not w.errors()
    assert_log_on(c, c.copy("node2"), w.log, 1)
    verify_big(c.copy("node2") / "big.dat")
    assert_identical(c)


def test_primary_killed_mid_resync_serves_again_and_resyncs(
    make_cluster: MakeCluster, tmp_path: Path
) -> None:
    c = make_cluster()
    c.kill_agent("node2")
    c.wait_state("node1", "ALONE", "READY", timeout=FAILOVER_S)
    assert fio(c.mnt("node1") / "big.dat", *BIG, "--do_verify=0", "--end_fsync=1")["rc"] == 0
    w = Writer(c, c.mnt("node1") / "w.dat", tmp_path / "w.log")
    # Its dead mount stays: the restarted agent must clear it before mounting again.
    kill_mid_resync(c, lambda: c.crash("node1", unmount=False))
    assert w.wait_exit(30) == 0 and w.errors()
    m = c.wait_state("node2", "WAIT", "NOT_READY", timeout=FAILOVER_S)
    assert "resync" in m["reason"] or not m["uptodate"], m  # a half-synced copy never serves
    assert not os.path.ismount(c.mnt("node2"))
    c.start("node1")
    c.wait_pair("node1", timeout=PAIR_S)
    # The data plane mounts (and clears what a dead one left) since issue 13.
    assert "clearing a stale MirrorPair mount" in c.dataplane_text("node1")
    assert_log_on(c, c.mnt("node1"), w.log, 1)
    verify_big(c.mnt("node1") / "big.dat")
    verify_big(c.copy("node2") / "big.dat")
    assert_identical(c)


# -- 2. a resync after an outage sends what changed ----------------------------------------
def write_big(c: ReplCluster, size: int) -> None:
    r = fio(c.mnt("node1") / "big.dat", "--rw=write", "--bs=1m", f"--size={size}",
            "--end_fsync=1")  # fmt: skip
    assert r["rc"] == 0, r


@pytest.mark.parametrize("written", ["before-the-outage", "while-paired"])
def test_resync_after_outage_sends_the_changed_percent(
    make_cluster: MakeCluster, written: str
) -> None:
    c = make_cluster()
    size, zone = 1024 * MiB, 1 * MiB  # the issue: 1 % of a 1 GiB file
    if written == "while-paired":  # synchronously replicated
        write_big(c, size)
    else:  # while node2 was away: its first return copies it by resync
        c.kill_agent("node2")
        c.wait_state("node1", "ALONE", "READY", timeout=FAILOVER_S)
        write_big(c, size)
        c.start("node2")
        c.wait_pair("node1", timeout=PAIR_S)
        assert c.wait_resyncs("node1", 2, 10) == ("bitmap", size)
    c.kill_agent("node2")  # the outage
    c.wait_state("node1", "ALONE", "READY", timeout=FAILOVER_S)
    zones = random.sample(range(size // zone), size // zone // 100)  # 1 % of the file
    with open(c.mnt("node1") / "big.dat", "r+b") as fh:
        for z in zones:
            os.pwrite(fh.fileno(), os.urandom(zone), z * zone)
        os.fsync(fh.fileno())
    changed = len(zones) * zone
    done = len(c.resyncs("node1"))
    c.start("node2")
    c.wait_pair("node1", timeout=PAIR_S)
    record, sent = c.wait_resyncs("node1", done + 1, 10)
    assert record == "bitmap" and changed <= sent <= changed + 2 * zone, (record, sent, changed)
    assert_identical(c)


# -- 3. changes behind the agent's back are found by hashes -----------------------------------
def tamper(path: Path, offset: int, keep_mtime: bool) -> None:
    st = path.stat()
    with open(path, "r+b") as fh:
        os.pwrite(fh.fileno(), b"changed behind the agent's back", offset)
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_file_changed_while_agent_stopped_is_found_by_hashes(make_cluster: MakeCluster) -> None:
    c = make_cluster()
    # Written while node2 is away, then copied by a resync: only what differs is sent
    # afterwards.
    c.kill_agent("node2")
    c.wait_state("node1", "ALONE", "READY", timeout=FAILOVER_S)
    data = os.urandom(64 * MiB)
    with open(c.mnt("node1") / "f.bin", "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    c.start("node2")
    c.wait_pair("node1", timeout=PAIR_S)
    assert c.wait_resyncs("node1", 2, 10) == ("bitmap", 64 * MiB)

    # (a) Its mtime changed: a file changed outside the record is compared by hashes.
    assert c.stop_agent("node2") == 0
    c.wait_state("node1", "ALONE", "READY", timeout=FAILOVER_S)
    tamper(c.copy("node2") / "f.bin", 10 * MiB + 123, keep_mtime=False)
    c.start("node2")
    c.wait_pair("node1", timeout=PAIR_S)
    assert c.wait_resyncs("node1", 3, 10) == ("bitmap", 1 * MiB)  # the one zone
    assert_identical(c)
    n1, n2 = (os.stat(c.copy(n) / "f.bin").st_mtime_ns for n in ("node1", "node2"))
    assert n1 == n2  # (b) relies on it: the copies' listings are equal

    # (b) Nothing in the listing shows it: only a full compare (second --fullsync) finds it.
    assert c.stop_agent("node2") == 0
    c.wait_state("node1", "ALONE", "READY", timeout=FAILOVER_S)
    tamper(c.copy("node2") / "f.bin", 40 * MiB + 7, keep_mtime=True)
    c.start("node2")
    c.wait_pair("node1", timeout=PAIR_S)
    done = len(c.resyncs("node1"))
    c.cli_ok("second", MODULE, "--fullsync", "--node", "node2", "--yes")
    c.wait_pair("node1", timeout=PAIR_S)
    assert c.wait_resyncs("node1", done + 1, 10) == ("hashes", 1 * MiB)
    assert (c.copy("node2") / "f.bin").read_bytes() == data


def test_fullsync_of_a_ready_secondary_compares_hashes(make_cluster: MakeCluster) -> None:
    c = make_cluster()
    with open(c.mnt("node1") / "f.bin", "wb") as fh:
        fh.write(os.urandom(8 * MiB))
        os.fsync(fh.fileno())
    done = len(c.resyncs("node1"))
    c.cli_ok("second", MODULE, "--fullsync", "--node", "node2", "--yes")
    assert c.wait_resyncs("node1", done + 1, 20)[0] == "hashes"
    c.wait_pair("node1", timeout=10)


# -- 4. split brain ------------------------------------------------------------------------
def put(path: Path, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def test_split_brain_both_write_while_partitioned_the_loser_s_changes_are_quarantined(
    make_cluster: MakeCluster,
) -> None:
    c = make_cluster()  # no witness: a total partition lets both serve
    put(c.mnt("node1") / "common.txt", "before the split\n")
    c.topo.cut("direct")
    c.topo.cut("lan:node2")  # node2 alone on its side
    c.wait_state("node1", "ALONE", "READY", timeout=FAILOVER_S)  # primary first
    c.wait_state("node2", "ALONE", "READY", via="node2", timeout=FAILOVER_S)
    put(c.mnt("node1") / "common.txt", "A: written by node1\n")
    put(c.mnt("node1") / "only-a.txt", "A's own file\n")
    put(c.mnt("node2") / "common.txt", "B: written by node2\n")
    put(c.mnt("node2") / "only-b.txt", "B's own file\n")
    c.topo.restore("lan:node2")
    c.topo.restore("direct")
    m2 = c.wait_state("node2", "WAIT", "NOT_READY", timeout=FAILOVER_S)
    assert m2["split_brain"], m2  # node1 was primary first: it keeps serving
    c.wait_state("node1", "ALONE", "READY")
    assert (c.mnt("node1") / "common.txt").read_text().startswith("A:")
    assert not (c.mnt("node1") / "only-b.txt").exists()  # nothing merged
    c.cli_ok("second", MODULE, "--node", "node2", "--yes")
    c.wait_pair("node1", timeout=PAIR_S)
    assert not (c.copy("node1") / "only-b.txt").exists()
    assert (c.copy("node2") / "common.txt").read_text().startswith("A:")
    assert not (c.copy("node2") / "only-b.txt").exists()
    assert_identical(c)
    quarantine = c.module_dir("node2") / "quarantine"
    kept = {p.name: p.read_text() for p in quarantine.glob("*/copy/0/*")}
    assert kept.get("common.txt", "").startswith("B:") and kept.get("only-b.txt"), kept


# -- 5. a hostile peer ----------------------------------------------------------------------
@pytest.mark.parametrize("path", ["0/../../escaped", "/tmp/mirrorpair-escaped"])
def test_path_outside_the_copy_is_refused_and_nothing_applied(
    make_cluster: MakeCluster, path: str
) -> None:
    c = make_cluster()
    before = diff_trees(c.copy("node2"), c.copy("node1"))
    assert not before
    argv = [sys.executable, "-m", "tests.integration.repl_netns", "rogue", c.base, path]
    r = c.topo.exec("node1", *map(str, argv), cwd=REPO, check=False)
    reply = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else r.stderr
    assert reply["state"] == "FAILED" and not reply["acknowledged"], reply
    assert any("unsafe path" in f for f in reply["failures"]), reply
    target = (c.module_dir("node2") / "copy" / path).resolve()  # paths are "<I>/..."
    assert not target.exists() and not os.path.lexists(target)
    assert not diff_trees(c.copy("node2"), c.copy("node1"))  # nothing applied on node2
    # The rogue displaced node1's stream: node1 degrades, then resyncs node2 again.
    c.wait_pair("node1", timeout=PAIR_S)
    c.wait_for(lambda: "refused unsafe op" in c.dataplane_text("node2"),
               "node2's data plane logs the refusal", 5)  # fmt: skip
    with open(c.mnt("node1") / "after.txt", "wb") as fh:
        fh.write(b"still replicating")
        os.fsync(fh.fileno())
    assert (c.copy("node2") / "after.txt").read_bytes() == b"still replicating"
