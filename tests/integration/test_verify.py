"""`mirrorpair verify` against two REAL agents (tests/integration/agents.py, no root).

The module "web" replicates one directory; until replication is wired in, nothing
touches the nodes' copies (<data_dir>/modules/web/copy/0), so the test writes them
directly. autostart = false keeps the module (and any future replication) at rest.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from node_agent.cli.client import AgentCallError
from node_agent.config.model import NODE_IDS
from tests.integration.agents import LocalCluster

MiB = 1 << 20


def _modules_toml(mount: Path) -> str:
    return f"""
[[module]]
name = "web"
kind = "app"
start = "true"
stop = "true"
autostart = false
directories = [{json.dumps(str(mount))}]

[[module]]
name = "plain"
kind = "app"
start = "true"
stop = "true"
autostart = false
"""


@pytest.fixture(scope="module")
def lc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    root = tmp_path_factory.mktemp("verify")
    mount = root / "srv-web"  # the application's view; unused until replication exists
    mount.mkdir()
    with LocalCluster(root / "cluster", modules=(), extra_toml=_modules_toml(mount)) as cluster:
        yield cluster


def copy_dir(lc: LocalCluster, node: str) -> Path:
    return lc.cluster.data_dirs[node] / "modules" / "web" / "copy" / "0"


def write_tree(top: Path) -> None:
    """The same content on both nodes (same bytes, modes; same owner: this user)."""
    shutil.rmtree(top, ignore_errors=True)
    top.mkdir(parents=True)
    top.chmod(0o755)
    (top / "big.bin").write_bytes(random.Random(7).randbytes(8 * MiB))
    (top / "conf").mkdir(mode=0o755)
    (top / "conf" / "app.ini").write_text("[app]\nport = 8080\n")
    (top / "empty").write_bytes(b"")
    (top / "deep" / "er").mkdir(parents=True)
    (top / "deep" / "er" / "data.txt").write_text("x" * 5000)
    os.symlink("conf/app.ini", top / "link")
    for p in (top / "big.bin", top / "conf" / "app.ini", top / "empty"):
        p.chmod(0o644)


def verify_json(lc: LocalCluster, *extra: str) -> tuple[int, dict, str]:
    rc, out, err = lc.cli("verify", "web", "--json", *extra)
    return rc, (json.loads(out) if out.strip() else {}), err


def test_verify_identical_then_different(lc: LocalCluster) -> None:
    for node in NODE_IDS:
        write_tree(copy_dir(lc, node))

    rc, out, err = lc.cli("verify", "web")
    assert rc == 0, (out, err)
    assert "identical: 4 files" in out, out
    assert f"{8 * MiB + 5000 + 18} bytes" in out, out
    rc, doc, _ = verify_json(lc)
    assert rc == 0 and doc["identical"] and doc["differences"] == []
    assert doc["zone_size"] == MiB and doc["algorithm"]

    # One zone of the big file changes on node2, an extra file on node1, a mode change.
    with open(copy_dir(lc, "node2") / "big.bin", "r+b") as f:
        f.seek(5 * MiB + 100)
        f.write(b"changed")
    (copy_dir(lc, "node1") / "extra.txt").write_text("only here\n")
    (copy_dir(lc, "node2") / "conf" / "app.ini").chmod(0o600)

    rc, out, err = lc.cli("verify", "web")
    assert rc == 1, (out, err)
    mount = lc.cluster.root.parent / "srv-web"
    lines = out.splitlines()
    assert f"{mount}/big.bin: content differs in zone 5 (bytes {5 * MiB}-{6 * MiB - 1})" in lines
    assert f"{mount}/extra.txt: only on node1 (file)" in lines
    assert f"{mount}/conf/app.ini: mode differs: 0644 on node1, 0600 on node2" in lines
    assert lines[-1].startswith("3 differences ("), out

    rc, doc, _ = verify_json(lc)
    assert rc == 1 and not doc["identical"]
    found = {(d["relative_path"], d["what"]): d for d in doc["differences"]}
    assert set(found) == {("big.bin", "zones"), ("extra.txt", "missing"), ("conf/app.ini", "mode")}
    assert found[("big.bin", "zones")]["zones"] == [[5, 5]]
    assert found[("big.bin", "zones")]["byte_ranges"] == [[5 * MiB, 6 * MiB]]
    assert found[("extra.txt", "missing")]["values"] == {"node1": "file", "node2": "absent"}
    assert found[("conf/app.ini", "mode")]["values"] == {"node1": "0644", "node2": "0600"}

    # Smaller zones pin the change down further: 5 MiB + 100 is in 64 KiB zone 80.
    rc, doc, _ = verify_json(lc, "--zone-size", "64K")
    assert rc == 1
    zones = [d for d in doc["differences"] if d["what"] == "zones"]
    assert zones[0]["zones"] == [[80, 80]] and doc["zone_size"] == 64 * 1024

    # A directory only on one side is one line, not one per entry under it.
    (copy_dir(lc, "node2") / "deep" / "er" / "data.txt").unlink()
    (copy_dir(lc, "node2") / "deep" / "er").rmdir()
    (copy_dir(lc, "node2") / "deep").rmdir()
    rc, out, _ = lc.cli("verify", "web")
    assert rc == 1 and f"{mount}/deep: only on node1 (dir, 2 entries inside)" in out, out
    assert "data.txt" not in out


def test_verify_unknown_module_and_no_directories(lc: LocalCluster) -> None:
    rc, out, err = lc.cli("verify", "nosuch")
    assert rc == 11, (out, err)
    assert "unknown module 'nosuch'" in err and out == ""
    rc, out, err = lc.cli("verify", "plain")
    assert rc == 13, (out, err)  # refused by the agent
    assert "module plain has no replicated directories" in err
    for zone_size, algorithm in ((3000, ""), (0, "md5")):
        with pytest.raises(AgentCallError) as info:
            list(lc.client("node1").digest("web", zone_size, algorithm))
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "power of two" in str(info.value) or "'md5' is not available" in str(info.value)


def test_verify_stream_is_chunked_and_streams(lc: LocalCluster) -> None:
    """The RPC itself: a header first (before hashing), then files, then last."""
    write_tree(copy_dir(lc, "node1"))
    chunks = list(lc.client("node1").digest("web", 64 * 1024, "blake2b-128"))
    assert chunks[0].algorithm == "blake2b-128" and not chunks[0].files
    assert chunks[0].zone_size == 64 * 1024 and chunks[0].node_id == "node1"
    assert "stop" in chunks[0].state_note
    assert chunks[-1].last and not any(c.last for c in chunks[:-1])
    files = {f.path: f for c in chunks for f in c.files if not f.first_zone}
    assert files["big.bin"].kind == "file" and files["link"].kind == "symlink"
    assert files["link"].target == "conf/app.ini" and files[""].kind == "dir"
    hashes = sum(len(f.zone_hashes) for c in chunks for f in c.files if f.path == "big.bin")
    assert hashes == 8 * MiB // (64 * 1024)


def test_verify_agent_unreachable(lc: LocalCluster) -> None:
    lc.kill("node2")
    try:
        rc, out, err = lc.cli("verify", "web")
        assert rc == 10, (out, err)
        assert "node2" in err and "unavailable" in err
    finally:
        lc.start("node2")
