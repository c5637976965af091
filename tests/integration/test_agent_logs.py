"""Where real agents log (node_agent/logging_setup.py, docs/logs.md):
journald with fields under systemd (a fake journald here), else a rotating file; and
the module log the console shows, kept across an agent's SIGKILL and restart."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from node_agent.dataplane.spec import DataPlaneSpec
from node_agent.dataplane.supervisor import LOG_KEEP_BYTES, read_pid, spawn
from protos import mirrorpair_pb2 as pb
from tests.conftest import require, require_binary, require_fuse
from tests.integration.agents import LocalCluster
from tests.integration.fake_journal import Entry, FakeJournal
from tests.integration.pairing_rig import REPO, free_port
from tests.integration.repl_rig import Pki

STAMP = re.compile(r"\d{4}-\d\d-\d\d|\d\d:\d\d:\d\d")
LOGGED = re.compile(r"^\d{4}-\d\d-\d\d \S+ \S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) ", re.M)


def _transition(node: str, **want: str):  # type: ignore[no-untyped-def]
    def match(e: Entry) -> bool:
        return (e.get("NODE") == node and e.get("MODULE") == "web" and bool(e.get("STATE"))
                and all(e.get(k) == v for k, v in want.items()))  # fmt: skip

    return match


def test_an_agent_under_systemd_logs_to_the_journal_with_fields_and_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "pair"
    root.mkdir()
    # node1's stderr is what systemd connected to the journal (JOURNAL_STREAM names it);
    # node2 inherits the same variable with another stderr: not under systemd, its stderr.
    stderr1 = root / "node1-agent.log"
    stderr1.touch()
    st = stderr1.stat()
    with FakeJournal(tmp_path / "journal.sock") as journal:
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        monkeypatch.setenv("MIRRORPAIR_JOURNAL_SOCKET", str(journal.path))
        with LocalCluster(root, log_level="INFO") as lc:
            lc.wait_settled("web")
            settled = journal.wait_for(_transition("node1", PRIORITY="6"))
            assert lc.cli("swap", "web")[0] == 0
            lc.wait_settled("web")
            commanded = journal.wait_for(
                lambda e: e.get("NODE") == "node1" and e.get("CAUSE") == "swap"
                and "(cert admin)" in e.get("WHO", "")
            )  # fmt: skip
            swapped = journal.wait_for(_transition("node1", CAUSE="swap"))
            served = lc.client("node1").logs("web", 1000, "", "")
        assert not journal.errors, journal.errors
        started = journal.wait_for(lambda e: "logging to the journal" in e.get("MESSAGE", ""))
    text1 = stderr1.read_text(errors="replace")
    text2 = (root / "node2-agent.log").read_text(errors="replace")

    for e in (settled, commanded, swapped):
        assert e["SYSLOG_IDENTIFIER"] == "mirrorpair-agent" and e["MODULE"] == "web", e
        assert e["CODE_FILE"].endswith(".py") and e["CODE_LINE"].isdigit() and e["CODE_FUNC"]
        assert not STAMP.search(e["MESSAGE"]), f"journald stamps entries: {e['MESSAGE']!r}"
        assert e["MESSAGE"] not in text1, "a line went to the journal and to stderr"
    assert started["SYSLOG_IDENTIFIER"] == "mirrorpair-agent" and started["NODE"] == "node1"
    # Nothing node1 logged is on its stderr (what is there was printed, not logged).
    assert not LOGGED.search(text1), text1[-2000:]
    # The journal's fields are the module log's, as GetLogs serves it.
    for e in (commanded, swapped):
        entry = next(x for x in served if e["MESSAGE"] == f"web: {x.message} [{_cause(x)}]")
        assert (e["CAUSE"], e.get("WHO", "")) == (entry.cause, entry.who)
        state = pb.ModuleState.Name(entry.new_state).removeprefix("STATE_")
        assert e.get("STATE", "") == (state if entry.new_state else "")
    # node2 logged to its stderr, as before, and nothing of it reached the journal.
    assert re.search(r"node2 INFO mirrorpair\.log: web: \w+/\w+ -> ", text2), text2[-2000:]
    assert not [e for e in journal.snapshot() if e.get("NODE") == "node2"]


def _cause(e: pb.LogEntry) -> str:
    return f"{e.cause} by {e.who}" if e.who else e.cause


def test_the_module_log_survives_a_sigkill_and_restart_of_the_agent(tmp_path: Path) -> None:
    with LocalCluster(tmp_path) as lc:
        _primary, secondary = lc.wait_settled("web")
        before = lc.client(secondary).logs("", 1000, "", "")
        transitions = [(e.seq, e.time, e.message) for e in before if e.new_state]
        assert transitions, before
        lc.kill(secondary)
        lc.start(secondary)
        lc.wait_settled("web")
        after = lc.client(secondary).logs("", 1000, "", "")
    kept = [(e.seq, e.time, e.message) for e in after]
    assert set(transitions) <= set(kept), "the old transitions are served after the restart"
    seqs = [e.seq for e in after]
    assert seqs == sorted(set(seqs)), "seq numbers go on, never reused"
    last_before = max(e.seq for e in before)
    restarted = [e for e in after if e.seq > last_before]
    assert any(f"agent {secondary} started" in e.message for e in restarted), restarted


def test_outside_systemd_the_agent_logs_to_a_file_in_its_state_dir(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items()
           if k not in ("JOURNAL_STREAM", "INVOCATION_ID", "MIRRORPAIR_LOG_FILE")}  # fmt: skip
    env["MIRRORPAIR_MDNS"] = "0"
    stderr = tmp_path / "stderr"
    with stderr.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "node_agent.main", "--config", str(tmp_path / "none.toml"),
             "--state-dir", str(state), "--listen", f"127.0.0.1:{free_port()}"],
            stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env,
        )  # fmt: skip
    log_file = state / "log" / "agent.log"
    try:
        deadline = time.monotonic() + 20
        while "serving the pairing calls" not in (
            log_file.read_text() if log_file.exists() else ""
        ):
            assert proc.poll() is None, stderr.read_text()
            assert time.monotonic() < deadline, stderr.read_text()
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    text = log_file.read_text()
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \? INFO mirrorpair: logging to "
                     + re.escape(str(log_file)), text, re.M), text  # fmt: skip
    assert re.search(r"WARNING node_agent.host.agent_host: pairing is open: code ", text), text
    # stderr is not a terminal: the file alone (only what is printed, not logged, is there).
    assert "pairing" not in stderr.read_text() and "logging to" not in stderr.read_text()


@pytest.mark.root
def test_a_data_plane_of_an_agent_on_the_journal_logs_there_too(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_fuse()
    (tmp_path / "mnt").mkdir()
    paths = pki.paths("node1")
    spec = DataPlaneSpec(
        module="web", directories=(str(tmp_path / "mnt"),), copy_root=str(tmp_path / "copy"),
        track_root=str(tmp_path / "track"), node_id="node1", peer_id="node2",
        peer_host="127.0.0.1", peer_port=1, ca=str(paths.ca), cert=str(paths.cert),
        key=str(paths.key),
    )  # fmt: skip
    run_dir = tmp_path / "modules" / "web" / "dataplane"
    run_dir.mkdir(parents=True)
    old_log = b"x" * LOG_KEEP_BYTES + b"a big log of earlier starts\n"
    (run_dir / "dataplane.log").write_bytes(old_log)
    with FakeJournal(tmp_path / "journal.sock") as journal:
        # What the agent's logging set-up leaves in the environment its data planes inherit.
        monkeypatch.setenv("MIRRORPAIR_LOG_TARGET", "journal")
        monkeypatch.setenv("MIRRORPAIR_JOURNAL_SOCKET", str(journal.path))
        client, _state = spawn(spec, run_dir)
        pid = read_pid(run_dir)
        try:
            e = journal.wait_for(lambda e: "data plane of web started" in e.get("MESSAGE", ""))
        finally:
            client.shutdown()
            client.close()
            deadline = time.monotonic() + 10
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)  # reaped by the supervisor's thread once it exits
        journal.wait_for(lambda e: "data plane of web stopped" in e.get("MESSAGE", ""))
    assert (e["SYSLOG_IDENTIFIER"], e["MODULE"], e["NODE"], e["PRIORITY"]) == (
        "mirrorpair-dataplane", "web", "node1", "6")  # fmt: skip
    assert not STAMP.search(e["MESSAGE"])
    assert "data plane of web" not in (run_dir / "dataplane.log").read_text()
    # The log a start appends to is bounded: the big one was moved aside first.
    assert (run_dir / "dataplane.log.1").read_bytes() == old_log
    assert (run_dir / "dataplane.log").stat().st_size < 10000


JOURNALD = "/lib/systemd/systemd-journald"
# In a private mount namespace, over tmpfs: a journald of its own, nothing of the host's.
REAL_JOURNAL = r"""
set -eu
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd /run/log
[ -d /var/log/journal ] && mount -t tmpfs tmpfs /var/log/journal
"$JOURNALD" 2>/run/journald.err &
j=$!
trap 'kill $j; wait $j || true' EXIT
for _ in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.05; done
INVOCATION_ID=0123 "$PYTHON" -c "$PROGRAM" 2>/dev/null
journalctl --flush >/dev/null 2>&1 || true
for d in /run/log/journal /var/log/journal; do
    if [ -d "$d" ]; then
        journalctl -D "$d" -o json --all --no-pager SYSLOG_IDENTIFIER=mirrorpair-agent
    fi
done
"""
PROGRAM = r"""
import logging, os, pathlib
from node_agent.core.states import Readiness, State
from node_agent.core.transitions import LogRecord
from node_agent.engine.logbook import LogBook
from node_agent.logging_setup import setup_agent_logging

tmp = pathlib.Path(os.environ["STATE_DIR"])
plan = setup_agent_logging("INFO", "node1", "", str(tmp))
assert plan.journal == "/run/systemd/journal/socket", plan  # INVOCATION_ID, stderr nowhere
book = LogBook("node1", tmp / "module-log.jsonl")
book.add_record(LogRecord(1.0, "web", "WARNING", "PRIM/READY -> ALONE/READY: peer lost",
                          "peer-lost", "", State.PRIM, State.ALONE, Readiness.READY,
                          Readiness.READY))
try:
    raise RuntimeError("boom")
except RuntimeError:
    logging.getLogger("mirrorpair.test").exception("with a traceback")
logging.getLogger("mirrorpair.test").error("big %s", "x" * (3 << 20))  # by memfd
"""


@pytest.mark.root
def test_a_real_journald_takes_the_agents_entries_and_fields(tmp_path: Path) -> None:
    require(os.geteuid() == 0, "needs root (a mount namespace)")
    require(os.access(JOURNALD, os.X_OK), f"needs {JOURNALD} (Debian package systemd)")
    require_binary("unshare")
    require_binary("journalctl")
    env = {**os.environ, "JOURNALD": JOURNALD, "PYTHON": sys.executable, "PROGRAM": PROGRAM,
           "PYTHONPATH": str(REPO), "STATE_DIR": str(tmp_path)}  # fmt: skip
    for name in ("JOURNAL_STREAM", "MIRRORPAIR_JOURNAL_SOCKET", "MIRRORPAIR_LOG_TARGET"):
        env.pop(name, None)
    argv = ["unshare", "--mount", "--propagation", "private", "bash", "-c", REAL_JOURNAL]
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    entries = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]

    def starting(text: str) -> dict:
        return next(e for e in entries if str(e.get("MESSAGE")).startswith(text))

    assert len(entries) == 4, r.stdout[-3000:]  # "logging to", the transition, two errors
    t = starting("web: PRIM/READY -> ALONE/READY")
    assert t["MESSAGE"] == "web: PRIM/READY -> ALONE/READY: peer lost [peer-lost]"
    assert (t["MODULE"], t["STATE"], t["CAUSE"], t["PRIORITY"], t["NODE"]) == (
        "web", "ALONE", "peer-lost", "4", "node1")  # fmt: skip
    assert "WHO" not in t and t["_TRANSPORT"] == "journal" and t["CODE_LINE"].isdigit()
    tb = starting("with a traceback\nTraceback (most recent call last)")
    assert "RuntimeError: boom" in tb["MESSAGE"] and tb["PRIORITY"] == "3"
    big = starting("big xxx")
    assert big["MESSAGE"] == "big " + "x" * (3 << 20)
