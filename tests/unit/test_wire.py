"""The replication wire format: round trips, refusals, and decoding properties."""

from __future__ import annotations

import contextlib
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node_agent.replication import ops
from node_agent.replication.stream import wire
from node_agent.replication.stream.frame_decoder import FrameDecoder
from node_agent.replication.stream.wire import (
    Fault,
    Frame,
    FrameType,
    Hello,
    HelloAck,
    Mode,
    WireError,
    encode_frame,
)

U64, U32, I64 = (0, 2**64 - 1), (0, 2**32 - 1), (-(2**63), 2**63 - 1)

EXAMPLES: list[ops.Op] = [
    ops.Write("dir/file.img", 4096, b"\x00\xffdata" * 100),
    ops.Truncate("a", 2**40),
    ops.Fallocate("a", 3, 0, 1 << 20),
    ops.Create("d/new", 0o100644),
    ops.Mknod("fifo", 0o010600, 0),
    ops.Mkdir("d/sub", 0o40755),
    ops.Unlink("d/old"),
    ops.Rmdir("d/sub"),
    ops.Rename("a", "b/c", 1),
    ops.Link("a", "hard"),
    ops.Symlink("../../etc/passwd", "ln"),  # a target is data: any text goes
    ops.Chmod("a", 0o4755),
    ops.Chown("a", -1, 2**32 - 1),
    ops.Utimens("a", -(10**18), 1_700_000_000_123_456_789),
    ops.SetXattr("a", "user.k", b"\x00v", 2),
    ops.RemoveXattr("a", "user.k"),
    ops.Fsync("", True),
    ops.Write("caf\u00e9/\udcff\udcfe", 0, b""),  # non-UTF-8 Linux names survive
]


def one(data: bytes) -> Frame:
    frames = FrameDecoder().feed(data)
    assert len(frames) == 1
    return frames[0]


def test_examples_cover_every_op_type() -> None:
    assert {type(op) for op in EXAMPLES} == set(ops.ALL_OPS)
    assert set(wire.OP_CODES.values()) == set(range(1, len(ops.ALL_OPS) + 1))


@pytest.mark.parametrize("op", EXAMPLES, ids=lambda op: type(op).__name__)
def test_op_round_trip(op: ops.Op) -> None:
    frame = one(encode_frame(FrameType.OP, 7, op))
    assert frame == Frame(FrameType.OP, 7, op)
    assert type(frame.body) is type(op)


FRAMES = [
    Frame(FrameType.HELLO, 0, Hello("vm1", "node1", "0001700000000-node1-0000abcd", Mode.SYNC)),
    Frame(FrameType.HELLO, 0, Hello("vm1", "node2", "", Mode.SECOND, protocol=9)),
    Frame(FrameType.HELLO_ACK, 0, HelloAck(True)),
    Frame(FrameType.HELLO_ACK, 0, HelloAck(False, "unknown module vm9")),
    Frame(FrameType.ACK, 2**64 - 1, 12),
    Frame(FrameType.NACK, 5, Fault(1, "unsafe path: '../x'")),
    Frame(FrameType.ERROR, 4, Fault(71, "invalid frame: bad magic")),
    Frame(FrameType.PING, 3),
    Frame(FrameType.PONG, 3),
    Frame(FrameType.REQUEST, 99, b"\x01zone hashes please"),
    Frame(FrameType.REPLY, 99, b""),
    Frame(FrameType.REPLY, 100, b"no such file", wire.FLAG_FAILED),
]


@pytest.mark.parametrize("frame", FRAMES, ids=lambda f: f.type.name)
def test_frame_round_trip(frame: Frame) -> None:
    assert one(encode_frame(frame.type, frame.seq, frame.body, frame.flags)) == frame


def test_every_frame_type_is_covered() -> None:
    assert {f.type for f in FRAMES} | {FrameType.OP} == set(FrameType)  # OP: above


def test_header_layout() -> None:
    data = encode_frame(FrameType.PING, 0x0102030405060708)
    assert len(data) == wire.HEADER_LEN == 22
    assert data[:2] == b"MR" and data[2] == 1 and data[3] == FrameType.PING
    assert data[6:14] == bytes(range(1, 9))
    assert struct.unpack(">I", data[18:22])[0] == zlib.crc32(data[:18])


def test_fault_message_with_undecodable_path_still_encodes() -> None:
    frame = one(encode_frame(FrameType.NACK, 1, Fault(1, "bad \udcff" + "x" * 10000)))
    assert frame.body.message.startswith("bad \\udcff")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "op",
    [
        ops.Write("x" * (wire.MAX_NAME + 1), 0, b""),
        ops.Write("a", 0, bytes(wire.MAX_WRITE_DATA + 1)),
        ops.Write("a", -1, b""),
        ops.Truncate("a", -5),
        ops.Chmod("a", 2**32),
        ops.SetXattr("a", "user.x", bytes(wire.MAX_XATTR + 1)),
        ops.Create("\ud800", 0),  # a lone surrogate no file name can contain
    ],
)
def test_unencodable_ops_raise_value_error(op: ops.Op) -> None:
    with pytest.raises(ValueError):
        wire.op_payload(op)


def _frame(ftype: int, seq: int, payload: bytes, flags: int = 0, magic: bytes = b"MR") -> bytes:
    head = struct.pack(">2sBBHQI", magic, 1, ftype, flags, seq, len(payload))
    return head + struct.pack(">I", zlib.crc32(head)) + payload


GOOD_OP = wire.op_payload(ops.Unlink("a"))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"XX" + encode_frame(FrameType.PING, 1)[2:], "bad magic"),
        (encode_frame(FrameType.PING, 1)[:10] + b"\x09" + encode_frame(FrameType.PING, 1)[11:],
         "checksum"),
        (_frame(42, 1, b""), "unknown frame type 42"),
        (_frame(FrameType.PING, 1, b"", flags=4), "unknown flags"),
        (_frame(FrameType.OP, 1, b"\x63" + GOOD_OP[1:]), "unknown op code 99"),
        (_frame(FrameType.OP, 1, b""), "empty OP"),
        (_frame(FrameType.OP, 1, GOOD_OP[:3]), "truncated path in Unlink"),
        (_frame(FrameType.OP, 1, GOOD_OP + b"!"), "trailing bytes in Unlink"),
        (_frame(FrameType.OP, 1, b"\x11\x00\x01a\x02"), "datasync is not a boolean"),
        (_frame(FrameType.OP, 1, b"\x07\xff\xff" + b"a" * 70000), "exceeds"),
        (_frame(FrameType.ACK, 1, b"\x00" * 7), "truncated applied in ACK"),
        (_frame(FrameType.PING, 1, b"x"), "trailing bytes in PING"),
        (_frame(FrameType.HELLO, 0, b"\x00\x01\x07"), "unknown mode 7"),
        (_frame(FrameType.HELLO, 0, b"\x00\x01\x00\x00\x01\xff\x00\x00\x00\x00"), "not UTF-8"),
        (_frame(FrameType.HELLO_ACK, 0, b"\x02\x00\x00"), "not a boolean"),
    ],
)  # fmt: skip
def test_bad_frames_raise_wire_error(data: bytes, reason: str) -> None:
    with pytest.raises(WireError, match=reason):
        FrameDecoder().feed(data)


def test_oversize_length_is_refused_before_the_payload_arrives() -> None:
    head = struct.pack(">2sBBHQI", b"MR", 1, FrameType.OP, 0, 1, wire.MAX_PAYLOAD + 1)
    decoder = FrameDecoder()
    with pytest.raises(WireError, match="exceeds"):
        decoder.feed(head + struct.pack(">I", zlib.crc32(head)))
    assert decoder.buffered <= wire.HEADER_LEN  # nothing allocated for the claimed size


def test_decoder_stays_failed_after_an_error() -> None:
    decoder = FrameDecoder()
    with pytest.raises(WireError):
        decoder.feed(b"garbage-garbage-garbage")
    with pytest.raises(WireError, match="bad magic"):
        decoder.feed(encode_frame(FrameType.PING, 1))


def test_partial_frames_wait_for_more() -> None:
    data = encode_frame(FrameType.OP, 1, EXAMPLES[0]) + encode_frame(FrameType.PING, 2)
    decoder = FrameDecoder()
    assert decoder.feed(data[:5]) == []
    assert decoder.feed(data[5:30]) == []
    frames = decoder.feed(data[30:])
    assert [f.seq for f in frames] == [1, 2] and decoder.buffered == 0


# ---- properties -----------------------------------------------------------------------

names = st.binary(max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape"))
u64, u32, i64 = (st.integers(*r) for r in (U64, U32, I64))
blobs = st.binary(max_size=3000)
OP_STRATEGIES = {
    ops.Write: st.builds(ops.Write, names, u64, blobs),
    ops.Truncate: st.builds(ops.Truncate, names, u64),
    ops.Fallocate: st.builds(ops.Fallocate, names, u32, u64, u64),
    ops.Create: st.builds(ops.Create, names, u32),
    ops.Mknod: st.builds(ops.Mknod, names, u32, u64),
    ops.Mkdir: st.builds(ops.Mkdir, names, u32),
    ops.Unlink: st.builds(ops.Unlink, names),
    ops.Rmdir: st.builds(ops.Rmdir, names),
    ops.Rename: st.builds(ops.Rename, names, names, u32),
    ops.Link: st.builds(ops.Link, names, names),
    ops.Symlink: st.builds(ops.Symlink, names, names),
    ops.Chmod: st.builds(ops.Chmod, names, u32),
    ops.Chown: st.builds(ops.Chown, names, i64, i64),
    ops.Utimens: st.builds(ops.Utimens, names, i64, i64),
    ops.SetXattr: st.builds(ops.SetXattr, names, names, blobs, u32),
    ops.RemoveXattr: st.builds(ops.RemoveXattr, names, names),
    ops.Fsync: st.builds(ops.Fsync, names, st.booleans()),
}
any_op = st.one_of(*OP_STRATEGIES.values())
any_frame = st.one_of(
    st.builds(lambda s, op: Frame(FrameType.OP, s, op), u64, any_op),
    st.builds(lambda s, a: Frame(FrameType.ACK, s, a), u64, u64),
    st.builds(lambda s, e, m: Frame(FrameType.NACK, s, Fault(e, m)), u64, u32, st.text()),
    st.builds(lambda s: Frame(FrameType.PING, s), u64),
    st.builds(lambda s, b: Frame(FrameType.REQUEST, s, b), u64, blobs),
    st.sampled_from(FRAMES),
)


def test_strategies_cover_every_op_type() -> None:
    assert set(OP_STRATEGIES) == set(ops.ALL_OPS)


@given(op=any_op, seq=u64)
def test_random_ops_round_trip(op: ops.Op, seq: int) -> None:
    assert one(encode_frame(FrameType.OP, seq, op)) == Frame(FrameType.OP, seq, op)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(any_frame, max_size=12), cuts=st.lists(st.integers(0, 10**6)))
def test_any_chunking_yields_the_same_frames(frames: list[Frame], cuts: list[int]) -> None:
    frames = [f if f.type is not FrameType.NACK else _roundtripped(f) for f in frames]
    data = b"".join(encode_frame(f.type, f.seq, f.body, f.flags) for f in frames)
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    decoder, out = FrameDecoder(), []
    for a, b in zip(points, points[1:], strict=False):
        out += decoder.feed(data[a:b])
    assert out == frames and decoder.buffered == 0


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.sampled_from([0, 100, 65536, 65537, 300_000, 1 << 20]), min_size=1,
                      max_size=6),
       cuts=st.lists(st.integers(0, 10**7)), via_buffer=st.booleans())  # fmt: skip
def test_big_writes_are_read_into_their_own_buffer_whatever_the_chunking(
    sizes: list[int], cuts: list[int], via_buffer: bool
) -> None:
    frames = [Frame(FrameType.OP, i + 1, ops.Write("0/f", i, bytes([i]) * n))
              for i, n in enumerate(sizes)]  # fmt: skip
    frames.append(Frame(FrameType.PING, 9))
    data = b"".join(encode_frame(f.type, f.seq, f.body) for f in frames)
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    decoder, out = FrameDecoder(), []
    for a, b in zip(points, points[1:], strict=False):
        chunk = memoryview(data)[a:b]
        if not via_buffer:
            out += decoder.feed(chunk)
            continue
        while chunk:  # as asyncio.BufferedProtocol does: fill what get_buffer offers
            with decoder.get_buffer(len(chunk)) as buf:
                n = min(len(buf), len(chunk))
                buf[:n] = chunk[:n]
            out += decoder.buffer_updated(n)
            chunk = chunk[n:]
    assert out == frames and decoder.buffered == 0
    for f in out[:-1]:  # a big payload not read at once: a read-only view, no copy
        data_field = f.body.data  # type: ignore[union-attr]
        assert isinstance(data_field, bytes) or (data_field.readonly and len(data_field) > 60000)


def _roundtripped(frame: Frame) -> Frame:  # fault messages may be normalised (escapes)
    return one(encode_frame(frame.type, frame.seq, frame.body))


@given(st.binary(max_size=400))
def test_random_bytes_only_raise_wire_error(data: bytes) -> None:
    with contextlib.suppress(WireError):
        FrameDecoder().feed(data)


@given(frame=any_frame, data=st.data())
def test_corrupted_frames_only_raise_wire_error(frame: Frame, data: st.DataObject) -> None:
    raw = bytearray(encode_frame(frame.type, frame.seq, frame.body, frame.flags))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(WireError):
        FrameDecoder().feed(bytes(raw))


@given(frame=any_frame, data=st.data())
def test_payload_corruption_behind_a_valid_header(frame: Frame, data: st.DataObject) -> None:
    # The header CRC does not cover the payload (TLS does): the decoders must be strict.
    payload = bytearray(wire.encode_body(frame.type, frame.body))
    if payload:
        for _ in range(data.draw(st.integers(1, 4))):
            payload[data.draw(st.integers(0, len(payload) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(payload)))
    with contextlib.suppress(WireError):
        FrameDecoder().feed(_frame(frame.type, frame.seq, bytes(payload[:cut]), frame.flags))
