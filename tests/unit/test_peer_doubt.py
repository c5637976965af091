"""The peer-doubt record (replication/tracking/peer_doubt.py): zones the secondary applied but may
lose if its machine (not just its agent) went down, settled at the next resync-begin."""

from __future__ import annotations

from pathlib import Path

import pytest

from node_agent.replication.resync import requests as rq
from node_agent.replication.tracking.peer_doubt import PeerDoubt, kernel_boot_id
from node_agent.replication.tracking.zones import ChangeSet

ZS = 1 << 20


def zones(path: str, *zs: int) -> ChangeSet:
    cs = ChangeSet(ZS)
    cs.apply(["z", path, list(zs)])
    return cs


def test_same_kernel_forgets_another_kernel_resends(tmp_path: Path) -> None:
    d = PeerDoubt(tmp_path / "doubt.json", ZS)
    assert d.take("k1") is None  # no record
    d.add(zones("0/a", 1, 2), "k1")
    again = PeerDoubt(tmp_path / "doubt.json", ZS)  # survives an agent restart
    assert again.take("k1").is_empty()  # its page cache survived: nothing to resend
    lost = again.take("k2")
    assert lost.is_dirty("0/a", 1) and lost.is_dirty("0/a", 2)
    assert again.take(None).is_dirty("0/a", 1)  # an old peer that reports no id
    again.forget()
    assert again.take("k2") is None


def test_records_for_different_kernels_trust_no_id(tmp_path: Path) -> None:
    d = PeerDoubt(tmp_path / "doubt.json", ZS)
    d.add(zones("0/a", 1), "k1")
    d.add(zones("0/b", 3), "k2")  # the peer rebooted between two breaks
    lost = d.take("k2")
    assert lost.is_dirty("0/a", 1) and lost.is_dirty("0/b", 3)


def test_unreadable_record_raises(tmp_path: Path) -> None:
    (tmp_path / "doubt.json").write_text("{not json")
    with pytest.raises(OSError, match="unreadable"):
        PeerDoubt(tmp_path / "doubt.json", ZS).take("k1")


def test_kernel_boot_id_and_the_begin_reply_carry_it(tmp_path: Path) -> None:
    assert kernel_boot_id() == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert kernel_boot_id(tmp_path / "missing") is None
    begin = rq.Begin("node1", "g1", ("blake2b",), ZS)
    reply = rq.BeginReply("g1", ("blake2b",), {"zone_size": ZS, "orphaned": False,
                                                "files": {}}, "boot-123")  # fmt: skip
    assert rq.decode_reply(begin, rq.encode_reply(reply)) == reply
    older = rq.encode_reply(rq.BeginReply("g1", (), None))
    assert rq.decode_reply(begin, older).kernel is None
