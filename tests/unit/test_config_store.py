"""The configuration on disk and its kept versions, the in-memory prepared changes
(node_agent/config/store.py), and an install killed at any moment."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from node_agent.config.load import parse_config
from node_agent.config.model import ClusterConfig
from node_agent.config.store import (
    KEEP_VERSIONS,
    Busy,
    ConfigStore,
    Pending,
    PendingTable,
)
from tests.unit.test_config import BASE


def cfg(version: int, extra: str = "") -> ClusterConfig:
    return parse_config(BASE.replace("[cluster]\n", f"[cluster]\nversion = {version}\n", 1)
                        + extra)  # fmt: skip


def test_install_keeps_versions_and_the_hand_written_first_one(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    one = cfg(1)
    path.write_text(one.source_text)
    path.chmod(0o640)
    store = ConfigStore(path)
    assert [(v.version, v.applied_by, v.running) for v in store.versions(1)] == [(1, "", True)]
    two = cfg(2)
    store.install(two, "admin", 1000.0, running=one)
    assert path.read_text() == two.source_text
    assert path.stat().st_mode & 0o777 == 0o640  # its permissions are kept
    assert (store.dir.stat().st_mode & 0o777) == 0o700
    assert store.read(1) == one.source_text and store.read(2) == two.source_text
    infos = store.versions(2)
    assert [(v.version, v.applied_by, v.applied_at, v.running) for v in infos] == [
        (2, "admin", 1000.0, True),
        (1, "", infos[1].applied_at, False),
    ]
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in store.dir.iterdir())
    with pytest.raises(KeyError, match="version 7 is not kept on this node \\(kept: 2, 1\\)"):
        store.read(7)


def test_a_first_install_creates_a_private_file(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    store = ConfigStore(tmp_path / "etc" / "cluster.toml")
    assert store.running_text() is None and store.versions(0) == []
    store.install(cfg(3), "wizard", 5.0)
    assert store.running_text() == cfg(3).source_text
    assert (tmp_path / "etc" / "cluster.toml").stat().st_mode & 0o777 == 0o600
    assert [v.version for v in store.versions(3)] == [3]


def test_old_versions_are_pruned(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path / "cluster.toml")
    for v in range(1, KEEP_VERSIONS + 4):
        store.install(cfg(v), "a", float(v))
    kept = [i.version for i in store.versions(KEEP_VERSIONS + 3)]
    assert kept == list(range(KEEP_VERSIONS + 3, 3, -1))


def test_stale_tmp_files_are_removed(tmp_path: Path) -> None:
    """Those of dead processes; not a running agent's (two demo agents share the folder),
    not another program's."""
    dead = 2**22 + 17  # above pid_max's default: no such process
    (tmp_path / ".cluster.toml.tmp").write_text("half")  # an older agent's name
    (tmp_path / f".cluster.toml.{dead}.tmp").write_text("half")
    (tmp_path / "versions").mkdir()
    (tmp_path / "versions" / f".cluster.v2.toml.{dead}.tmp").write_text("half")
    (tmp_path / "versions" / f".cluster.v3.toml.{os.getpid()}.tmp").write_text("writing")
    (tmp_path / ".other.conf.tmp").write_text("not ours")
    ConfigStore(tmp_path / "cluster.toml")
    assert sorted(p.name for p in tmp_path.rglob("*.tmp")) == [
        ".cluster.v3.toml." + str(os.getpid()) + ".tmp",
        ".other.conf.tmp",
    ]


def pending(tx: str, expires: float = 100.0, version: int = 2) -> Pending:
    return Pending(tx, cfg(version), 1, "admin", expires)


def test_one_pending_transaction_at_a_time_with_expiry() -> None:
    table = PendingTable()
    table.put(pending("a"), now=0.0)
    table.put(pending("a"), now=1.0)  # the same transaction again: replaced
    with pytest.raises(Busy, match="transaction a, version 2, prepared by admin.*expires in 89 s"):
        table.put(pending("b"), now=11.0)
    assert table.take("b", now=12.0) is None
    assert table.take("a", now=12.0) is not None
    assert table.take("a", now=12.0) is None  # taken once
    table.put(pending("c", expires=20.0), now=13.0)
    assert table.current(19.0) is not None and table.current(20.0) is None  # expired
    table.put(pending("d"), now=21.0)  # free again
    assert not table.drop("x") and table.drop("d") and table.current(22.0) is None


_WRITER = """
import sys
from pathlib import Path
from node_agent.config.store import atomic_write
path = Path(sys.argv[1])
texts = [b"A" * (4 << 20), b"B" * (4 << 20)]
print("go", flush=True)
i = 0
while True:
    atomic_write(path, texts[i % 2])
    i += 1
"""


def test_an_install_killed_at_any_moment_leaves_a_whole_file(tmp_path: Path) -> None:
    """A real process replaces a 4 MiB file over and over and is SIGKILLed at random
    moments: the file is always one whole text or the other."""
    path = tmp_path / "cluster.toml"
    path.write_bytes(b"A" * (4 << 20))
    rng = random.Random(12)
    root = Path(__file__).resolve().parents[2]
    for _ in range(15):
        env = {**os.environ, "PYTHONPATH": str(root)}
        argv = [sys.executable, "-c", _WRITER, str(path)]
        proc = subprocess.Popen(argv, cwd=root, stdout=subprocess.PIPE, env=env)
        assert proc.stdout is not None and proc.stdout.readline() == b"go\n"
        time.sleep(rng.uniform(0.0, 0.15))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        data = path.read_bytes()
        assert data in (b"A" * (4 << 20), b"B" * (4 << 20)), (len(data), data[:1], data[-1:])
    ConfigStore(path)  # the next agent start removes what the kill left
    assert not list(tmp_path.glob(".*.tmp"))
