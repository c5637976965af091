"""Replication wired into the engine: two real engines on loopback with real FUSE mounts
and the real TLS replication stream."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from node_agent.config.load import parse_config
from protos.security.ca import create_ca, issue_certificate
from tests.conftest import require, require_binary
from tests.integration.engine_pair import EnginePair, cluster_config, free_port, state_of


def replicated_config(root: Path):
    base = cluster_config(root)
    create_ca(root, "enginetest")
    for node, ip in (("node1", "127.0.0.1"), ("node2", "127.0.0.2")):
        issue_certificate(root, node, root, ips=[ip])
    port = free_port()
    text = base.source_text.replace(
        'api = "127.0.0.1:1"', f'api = "127.0.0.1:1"\nreplication = "127.0.0.1:{port}"'
    ).replace('api = "127.0.0.2:1"', f'api = "127.0.0.2:1"\nreplication = "127.0.0.2:{port}"')
    text = text.replace('kind = "app"', f'kind = "app"\ndirectories = ["{root}/mnt/{{node}}"]')
    return parse_config(text, "engine-replication-test")


def test_writes_reach_the_secondary_and_survive_failover(tmp_path: Path) -> None:
    require(os.path.exists("/dev/fuse"), "needs /dev/fuse (apt-get install fuse3)")
    require_binary("fusermount3")
    config = replicated_config(tmp_path)

    async def scenario() -> None:
        pair = EnginePair(config)
        e1, e2 = pair.start("node1"), pair.start("node2")
        mnt1, mnt2 = tmp_path / "mnt/node1", tmp_path / "mnt/node2"
        copy2 = tmp_path / "node2/modules/web/copy/0"
        try:
            await pair.wait_roles("node1", "node2", "PRIM/SECOND", 30)
            assert os.path.ismount(mnt1) and not os.path.ismount(mnt2)
            data = os.urandom(3 * 1024 * 1024 + 17)

            def write() -> None:
                with open(mnt1 / "video.bin", "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())

            await asyncio.to_thread(write)
            # Synchronous: once fsync returned, the secondary's copy has every byte.
            assert (copy2 / "video.bin").read_bytes() == data
            await pair.stop("node1")  # a clean stop: node2 takes over at once
            await pair.wait(lambda: state_of(e2) == ("ALONE", "READY"), "node2 alone", 30)
            assert os.path.ismount(mnt2) and not os.path.ismount(mnt1)
            assert (mnt2 / "video.bin").read_bytes() == data

            def change() -> None:
                with open(mnt2 / "video.bin", "r+b") as fh:
                    fh.seek(1024 * 1024)
                    fh.write(b"changed while node1 was away")
                    os.fsync(fh.fileno())

            await asyncio.to_thread(change)
            expected = (mnt2 / "video.bin").read_bytes()
            e1 = pair.start("node1")  # returns as secondary and resyncs what changed
            await pair.wait_roles("node2", "node1", "node1 resynced", 60)
            copy1 = tmp_path / "node1/modules/web/copy/0"
            assert (copy1 / "video.bin").read_bytes() == expected
            if os.environ.get("MP_SHOW_LOGS"):
                for e in (e1, e2):
                    for le in e.logs("web", 200, "", ""):
                        print(e.node_id, le.message)
        finally:
            await pair.close()

    asyncio.run(asyncio.wait_for(scenario(), 120))


@pytest.mark.parametrize("stopped_first", [False, True], ids=["waiting", "stopped first"])
def test_split_brain_loser_quarantines_its_changes_then_resyncs(
    tmp_path: Path, stopped_first: bool
) -> None:
    # Stopped first: a stop clears the split-brain flag, yet `second` must still keep
    # the loser's own changes (its history still diverges from the primary's).
    require(os.path.exists("/dev/fuse"), "needs /dev/fuse (apt-get install fuse3)")
    require_binary("fusermount3")
    config = replicated_config(tmp_path)
    from protos import mirrorpair_pb2 as pb

    def put(path: Path, text: str) -> None:
        with open(path, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    async def scenario() -> None:
        pair = EnginePair(config)
        e1, e2 = pair.start("node1"), pair.start("node2")
        mnt1, mnt2 = tmp_path / "mnt/node1", tmp_path / "mnt/node2"
        try:
            await pair.wait(lambda: state_of(e2) == ("SECOND", "READY"), "paired", 30)
            await asyncio.to_thread(put, mnt1 / "common.txt", "before the split\n")
            await pair.stop("node2")  # node1 goes on alone and writes A
            await pair.wait(lambda: state_of(e1) == ("ALONE", "READY"), "node1 alone", 30)
            await asyncio.to_thread(put, mnt1 / "common.txt", "A: written by node1 alone\n")
            await pair.stop("node1")
            e2 = pair.start("node2")  # node2 alone: not up to date, forced with prim
            await pair.wait(lambda: state_of(e2)[0] == "WAIT", "node2 waits", 30)
            out = await e2.command("web", pb.COMMAND_PRIM, "tester")
            assert out.accepted, out.message
            await pair.wait(lambda: state_of(e2) == ("ALONE", "READY"), "node2 forced", 30)
            await asyncio.to_thread(put, mnt2 / "common.txt", "B: written by node2 alone\n")
            await asyncio.to_thread(put, mnt2 / "only-b.txt", "B's own file\n")
            await pair.stop("node2")
            e1, e2 = pair.start("node1"), pair.start("node2")
            # node1 was primary first: it serves; node2 waits with split brain.
            await pair.wait(
                lambda: (
                    state_of(e1) == ("ALONE", "READY")  # serving: mounted
                    and state_of(e2)[0] == "WAIT"
                    and e2.status().modules[0].split_brain
                ),
                "split brain",
                30,
            )
            assert (mnt1 / "common.txt").read_text().startswith("A:")
            if stopped_first:
                out = await e2.command("web", pb.COMMAND_STOP, "tester")
                assert out.accepted, out.message
                await pair.wait(lambda: state_of(e2)[0] == "STOP", "node2 stopped", 30)
                assert not e2.status().modules[0].split_brain
            out = await e2.command("web", pb.COMMAND_SECOND, "tester")
            assert out.accepted, out.message
            await pair.wait_roles("node1", "node2", "loser resynced", 60)
            copy2 = tmp_path / "node2/modules/web/copy/0"
            assert (copy2 / "common.txt").read_text().startswith("A:")
            assert not (copy2 / "only-b.txt").exists()
            kept = list((tmp_path / "node2/modules/web/quarantine").glob("*/copy/0/*"))
            by_name = {p.name: p.read_text() for p in kept}
            assert by_name.get("common.txt", "").startswith("B:"), by_name
            assert by_name.get("only-b.txt") == "B's own file\n"
        finally:
            await pair.close()

    asyncio.run(asyncio.wait_for(scenario(), 150))
