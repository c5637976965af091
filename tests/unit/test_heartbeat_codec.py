"""Heartbeat datagram codec: authentication and robustness against any input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node_agent.heartbeat.codec import (
    HEADER_LEN,
    MAGIC,
    MAX_DATAGRAM,
    HeartbeatRejected,
    _mac,
    decode,
    encode,
)
from protos import mirrorpair_pb2 as pb
from protos.heartbeat_pb2 import Heartbeat, PeerModuleView

SECRET = b"cluster-secret"


def sample() -> Heartbeat:
    hb = Heartbeat(
        cluster="demo",
        node_id="node2",
        boot_id=1_700_000_000_000_000_000,
        seq=42,
        link="lan",
        sent_time=1700000000.25,
        witness_reachable=True,
    )
    hb.modules.append(
        PeerModuleView(
            name="web",
            state=pb.STATE_PRIM,
            uptodate=True,
            generations=["g1", "g2"],
            config_version=3,
        )
    )
    return hb


def rejected_reason(data: bytes, secret: bytes = SECRET) -> str:
    with pytest.raises(HeartbeatRejected) as info:
        decode(data, secret)
    return info.value.reason


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def test_round_trip() -> None:
    hb = sample()
    data = encode(hb, SECRET)
    assert data.startswith(MAGIC)
    assert decode(data, SECRET) == hb


def test_layout_is_magic_mac_payload() -> None:
    hb = sample()
    data = encode(hb, SECRET)
    payload = data[HEADER_LEN:]
    assert data[4:HEADER_LEN] == _mac(SECRET, payload)
    assert Heartbeat.FromString(payload) == hb


@pytest.mark.parametrize(
    ("where", "reason"),
    [(0, "bad magic"), (3, "bad magic"), (4, "bad hmac"), (35, "bad hmac"), (-1, "bad hmac")],
)
def test_flipped_bit_rejected(where: int, reason: str) -> None:
    data = encode(sample(), SECRET)
    assert rejected_reason(flip(data, where % len(data))) == reason


def test_every_single_bit_flip_rejected() -> None:
    data = encode(sample(), SECRET)
    for i in range(len(data)):
        for bit in range(8):
            bad = data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1 :]
            with pytest.raises(HeartbeatRejected):
                decode(bad, SECRET)


def test_wrong_secret_rejected() -> None:
    assert rejected_reason(encode(sample(), SECRET), b"other-secret") == "bad hmac"


def test_empty_secret_does_not_accept_keyed_datagrams() -> None:
    assert rejected_reason(encode(sample(), SECRET), b"") == "bad hmac"


@pytest.mark.parametrize("length", [0, 1, 3, 4, HEADER_LEN - 1])
def test_truncated_header_rejected(length: int) -> None:
    data = encode(sample(), SECRET)
    assert rejected_reason(data[:length]) == "too short"


def test_truncated_payload_rejected() -> None:
    data = encode(sample(), SECRET)
    assert rejected_reason(data[:-1]) == "bad hmac"


def test_empty_payload_is_a_valid_empty_heartbeat() -> None:
    # Header only: authentic, decodes to defaults; Liveness rejects it (wrong cluster).
    assert decode(encode(Heartbeat(), SECRET), SECRET) == Heartbeat()


def test_undecodable_payload_with_valid_mac() -> None:
    payload = b"\xff\xff\xff"  # invalid tag/varint
    data = MAGIC + _mac(SECRET, payload) + payload
    assert rejected_reason(data) == "undecodable payload"


def test_oversize_rejected_before_hashing() -> None:
    payload = b"\x00" * MAX_DATAGRAM
    data = MAGIC + _mac(SECRET, payload) + payload
    assert rejected_reason(data) == "oversize"


def test_encode_refuses_oversize() -> None:
    hb = sample()
    hb.modules[0].generations.append("x" * MAX_DATAGRAM)
    with pytest.raises(ValueError, match="exceeds"):
        encode(hb, SECRET)


def test_largest_allowed_datagram_accepted() -> None:
    hb = Heartbeat(cluster="demo")
    module = hb.modules.add(name="n" * (MAX_DATAGRAM - 100))
    # Length prefixes are varints: converge on exactly MAX_DATAGRAM bytes.
    while (size := len(encode_unchecked(hb))) != MAX_DATAGRAM:
        module.name = "n" * (len(module.name) + MAX_DATAGRAM - size)
    data = encode(hb, SECRET)
    assert decode(data, SECRET) == hb
    module.name += "n"
    with pytest.raises(ValueError):
        encode(hb, SECRET)


def encode_unchecked(hb: Heartbeat) -> bytes:
    payload = hb.SerializeToString(deterministic=True)
    return MAGIC + _mac(SECRET, payload) + payload


@given(st.binary(max_size=200))
def test_random_bytes_only_ever_rejected(data: bytes) -> None:
    with pytest.raises(HeartbeatRejected):
        decode(data, SECRET)


@given(st.binary(max_size=200))
def test_random_payload_with_magic_only_ever_rejected(tail: bytes) -> None:
    with pytest.raises(HeartbeatRejected):
        decode(MAGIC + tail, SECRET)


@given(st.binary(max_size=300))
def test_authentic_random_payload_decodes_or_rejects_cleanly(payload: bytes) -> None:
    # A peer with the secret but a broken encoder: never anything but HeartbeatRejected.
    data = MAGIC + _mac(SECRET, payload) + payload
    try:
        decode(data, SECRET)
    except HeartbeatRejected as exc:
        assert exc.reason == "undecodable payload"


@given(
    st.builds(
        Heartbeat,
        cluster=st.text(max_size=20),
        node_id=st.text(max_size=10),
        boot_id=st.integers(0, 2**64 - 1),
        seq=st.integers(0, 2**64 - 1),
        link=st.text(max_size=10),
        sent_time=st.floats(allow_nan=False),
        witness_reachable=st.booleans(),
    ),
    st.binary(min_size=1, max_size=64),
)
def test_round_trip_any_heartbeat(hb: Heartbeat, secret: bytes) -> None:
    assert decode(encode(hb, secret), secret) == hb
