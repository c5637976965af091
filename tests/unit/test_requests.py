"""The resync REQUEST/REPLY messages (resync/requests.py): round trips, hostile payloads;
and the sender's table of requests awaiting a reply (stream/sender_types.py)."""

from __future__ import annotations

import contextlib
import json
import struct
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node_agent.replication.local.scan import Entry
from node_agent.replication.resync import requests as rq
from node_agent.replication.stream.sender_types import PendingRequests, RequestFailed
from node_agent.replication.tracking.zones import ChangeSet

ENTRY = Entry("0/d\udcff/f", "f", 0o100644, 0, 0, 5, 10**18, 10**18 - 1, None, 64, 99, 1, 0)
LINK = Entry("0/l", "l", 0o120777, 1000, 1000, 3, 1, 2, "../x", 64, 100, 1, 0)

REQUESTS = [
    rq.Begin("node1", "g1", ("xxh3-128", "blake2b-128"), 1 << 20),
    rq.ListPage(0),
    rq.ListPage(12345),
    rq.Hashes("0/disk.img", (0, 5, 1023), "blake2b-128", 1 << 20),
    rq.Done("g2", ("g1", "g2")),
]


@pytest.mark.parametrize("req", REQUESTS, ids=lambda r: type(r).__name__)
def test_requests_round_trip(req: rq.Request) -> None:
    assert rq.decode_request(rq.encode_request(req)) == req


def test_replies_round_trip() -> None:
    cs = ChangeSet()
    cs.apply(["z", "0/a", [1, 2, 7]])
    cases = [
        (REQUESTS[0], rq.BeginReply("g1", ("blake2b-128",), cs.to_dict())),
        (REQUESTS[0], rq.BeginReply(None, (), None)),
        (REQUESTS[1], rq.ListReply((ENTRY, LINK), 2)),
        (REQUESTS[1], rq.ListReply((), None)),
        (REQUESTS[3], rq.HashesReply({0: b"a" * 16, 1023: b"\0" * 16})),
        (REQUESTS[4], rq.DoneReply()),
    ]
    for req, reply in cases:
        assert rq.decode_reply(req, rq.encode_reply(reply)) == reply
    got = rq.decode_reply(REQUESTS[0], rq.encode_reply(cases[0][1]))
    assert ChangeSet.from_dict(got.activity) == cs  # type: ignore[union-attr]


def test_non_utf8_names_survive() -> None:
    reply = rq.decode_reply(REQUESTS[1], rq.encode_list_reply([rq.entry_json(ENTRY)], None))
    assert reply.entries[0].path == "0/d\udcff/f"  # type: ignore[union-attr]


def _raw(header: object, tail: bytes = b"") -> bytes:
    data = json.dumps(header).encode()
    return struct.pack(">I", len(data)) + data + tail


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\0\0",
        struct.pack(">I", 50) + b"{}",  # header overruns
        _raw([1, 2]),  # not an object
        _raw({"x": 1}),  # no type
        _raw({"t": "nope"}),
        _raw({"t": "list"}),  # missing field
        _raw({"t": "list", "start": -1}),
        _raw({"t": "list", "start": True}),  # bool is no number
        _raw({"t": "list", "start": "0"}),
        _raw({"t": "list", "start": 0}, b"tail"),
        _raw({"t": "hashes", "path": "0/a", "zones": [1, -2], "algo": "x", "zone_size": 4}),
        _raw(
            {"t": "hashes", "path": "0/a", "zones": list(range(257)), "algo": "x", "zone_size": 4}
        ),  # fmt: skip
        _raw({"t": "hashes", "path": "0/a", "zones": [1], "algo": "x", "zone_size": 3}),
        _raw({"t": "hashes", "path": "0/a", "zones": [1], "algo": "x", "zone_size": 1 << 30}),
        _raw({"t": "hashes", "path": 7, "zones": [1], "algo": "x", "zone_size": 4}),
        _raw({"t": "begin", "node": "n", "generation": "g", "hashes": [1], "zone_size": 4}),
        _raw({"t": "done", "generation": "g", "history": ["g"] * 65}),
        struct.pack(">I", 2) + b"\xff\xfe",  # not UTF-8 JSON
    ],
)
def test_bad_requests_are_refused(payload: bytes) -> None:
    with pytest.raises(rq.RequestError):
        rq.decode_request(payload)


@pytest.mark.parametrize(
    ("req", "payload"),
    [
        (REQUESTS[1], _raw({"t": "done_r"})),  # the wrong reply type
        (REQUESTS[1], _raw({"t": "list_r", "next": None, "entries": [["0/a", "f"]]})),
        (REQUESTS[1], _raw({"t": "list_r", "next": None, "entries": [[1] * 13]})),
        (REQUESTS[1], _raw({"t": "list_r", "next": None,
                            "entries": [["0/a", "?", 1, 1, 1, 1, 1, 1, None, 1, 1, 1, 1]]})),
        (REQUESTS[3], _raw({"t": "hashes_r", "zones": [1, 2]}, b"x" * 16)),  # short tail
        (REQUESTS[4], _raw({"t": "done_r"}, b"x")),
    ],
)  # fmt: skip
def test_bad_replies_are_refused(req: rq.Request, payload: bytes) -> None:
    with pytest.raises(rq.RequestError):
        rq.decode_reply(req, payload)


@given(st.binary(max_size=200))
def test_decoding_garbage_only_raises_request_error(data: bytes) -> None:
    for decode in (rq.decode_request, lambda d: rq.decode_reply(REQUESTS[3], d)):
        with contextlib.suppress(rq.RequestError):
            decode(data)


def test_encoding_refuses_oversized_hash_requests() -> None:
    with pytest.raises(ValueError):
        rq.encode_request(rq.Hashes("0/a", tuple(range(rq.MAX_HASH_ZONES + 1)), "x", 4))
    with pytest.raises(ValueError):
        rq.encode_reply(rq.HashesReply({0: b"short"}))


def test_pending_requests_resolve_fail_and_time_out() -> None:
    table = PendingRequests()
    (a, wa), (b, wb), (c, wc) = table.add(), table.add(), table.add()
    assert len({a, b, c}) == 3
    threading.Timer(0.05, table.resolve, (a, b"reply", False)).start()
    assert table.wait(a, wa, 5, "peer") == b"reply"
    table.resolve(b, b"no such file", True)  # before anyone waits: kept
    with pytest.raises(RequestFailed, match="no such file"):
        table.wait(b, wb, 5, "peer")
    with pytest.raises(TimeoutError):
        table.wait(c, wc, 0.01, "peer")
    table.resolve(c, b"late", False)  # dropped, no error
    d, wd = table.add()
    table.fail_all(ConnectionError("gone"))
    with pytest.raises(ConnectionError):
        table.wait(d, wd, 5, "peer")
