"""The replication wire format (DESIGN §5 "Data path"): the one place it is defined.

One mutually authenticated TLS 1.3 TCP connection per module carries a stream of frames.
All integers are big-endian. Every frame is a 22-byte header followed by its payload::

    off len field
      0   2 magic    b"MR"
      2   1 version  1 (the framing layout; a different value is refused)
      3   1 type     FrameType
      4   2 flags    0, except REPLY's FLAG_FAILED; any other bit is refused
      6   8 seq      op sequence number / cumulative ack / ping nonce / request id
     14   4 length   payload bytes, at most MAX_PAYLOAD (refused before anything is buffered)
     18   4 hcrc     CRC-32 (zlib) of bytes 0..17

Why a header CRC and no payload CRC: TLS already authenticates every byte (AEAD); a payload
checksum would add nothing on the real transport but cost ~175 µs per MiB on each side
(15-30 % of a 1 MiB write's budget). The header CRC is nearly free and catches a desynced
or foreign byte stream before its length is trusted. zlib's CRC-32: it is in the stdlib.

Payloads (``s`` = u16 byte length + bytes, at most MAX_NAME bytes; HELLO strings are strict
UTF-8, op paths and names are UTF-8 with surrogateescape so any Linux file name survives)::

    1 HELLO      u16 protocol (the major of node_agent/protocol.py), u8 mode (0 sync,
                 1 second), s module, s node_id, s generation (the sender's current
                 data generation id); seq 0
    2 HELLO_ACK  u8 accepted (0/1), s reason ("" when accepted); seq 0
    3 OP         u8 op code, then the op's fields in the order of OP_LAYOUTS below;
                 Write data and SetXattr value are the raw rest of the payload
    4 ACK        u64 applied. seq = the cumulative release point: every op with a seq <= it
                 is applied (sync) or received (second; never past an unapplied Fsync)
    5 NACK       u32 errno, s message. seq = the op the secondary could not apply; it applied
                 nothing from that op on and closes the stream: the primary degrades.
                 errno NACK_LEFT_ROLE (ESHUTDOWN): its module left the secondary role
                 there (it stopped) -- an orderly end; in an ERROR too (its data plane
                 stops)
    6 ERROR      u32 errno, s message. seq = last applied. Stream-level fault (bad frame,
                 protocol violation); whoever sends it then closes the connection
    7 PING       empty; seq = nonce       8 PONG  empty; seq = the PING's nonce
    9 REQUEST    opaque bytes; seq = request id (resync: listings, zone hashes). Handled in
                 order with the ops around it
   10 REPLY      opaque bytes; seq = request id. FLAG_FAILED: payload is a UTF-8 message

OP_LAYOUTS gives each op's code (1 Write ... 17 Fsync) and its fields in wire order as
name:code, code being s (string), Q (u64), I (u32), q (i64: uid/gid -1 = unchanged, times
before 1970), ? (u8 0/1) or * (the raw rest of the payload).
Decoding checks every length against the bytes present, refuses trailing bytes, unknown
op codes and unknown frame types with ``WireError``; it allocates at most one frame's
payload beyond what it was fed, and never evaluates anything.
"""

from __future__ import annotations

import errno
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from node_agent.config.model import DEFAULT_REPLICATION_PORT
from node_agent.protocol import PROTOCOL as AGENT_PROTOCOL
from node_agent.replication import ops
from node_agent.replication.ops import Op

MAGIC, VERSION = b"MR", 1  # VERSION: the framing layout
PROTOCOL = AGENT_PROTOCOL.major  # HELLO's: a receiver refuses another major
DEFAULT_PORT = DEFAULT_REPLICATION_PORT
HEADER = struct.Struct(">2sBBHQI")  # without the trailing hcrc
HEADER_LEN = HEADER.size + 4
MAX_WRITE_DATA = 2 * 1024 * 1024  # FUSE's max_write is 1 MiB; bigger Writes are split
MAX_XATTR = 64 * 1024  # Linux XATTR_SIZE_MAX
MAX_NAME = 4096  # PATH_MAX
MAX_PAYLOAD = MAX_WRITE_DATA + 2 * MAX_NAME + 64
FLAG_FAILED = 0x0001
NACK_LEFT_ROLE = errno.ESHUTDOWN  # local/apply.py NotServing
READ_SIZE = 64 * 1024  # the least get_buffer offers

_U8, _U16, _U32, _U64 = (struct.Struct(f) for f in (">B", ">H", ">I", ">Q"))
_FIELD = {"Q": _U64, "I": _U32, "q": struct.Struct(">q"), "?": _U8}
_HELLO = struct.Struct(">HB")


class WireError(Exception):
    """The byte stream is not valid MirrorPair replication traffic; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FrameType(IntEnum):
    HELLO, HELLO_ACK, OP, ACK, NACK, ERROR, PING, PONG, REQUEST, REPLY = range(1, 11)


class Mode(StrEnum):
    SYNC = "sync"  # ACK after the secondary applied (and fsynced, for Fsync ops)
    SECOND = "second"  # ACK on receipt by the secondary: a crash of it loses received ops


_MODE_CODES = {Mode.SYNC: 0, Mode.SECOND: 1}
_MODES = {code: mode for mode, code in _MODE_CODES.items()}


@dataclass(frozen=True)
class Hello:
    module: str
    node_id: str
    generation: str
    mode: Mode = Mode.SYNC
    protocol: int = PROTOCOL


@dataclass(frozen=True)
class HelloAck:
    accepted: bool
    reason: str = ""


@dataclass(frozen=True)
class Fault:  # the body of NACK and ERROR frames
    errno: int
    message: str


Body = Hello | HelloAck | Op | Fault | bytes | int | None


@dataclass(frozen=True)
class Frame:
    """``body`` by type: Hello, HelloAck, an ops.* op, int (ACK: applied seq), Fault
    (NACK/ERROR), bytes (REQUEST/REPLY), None (PING/PONG)."""

    type: FrameType
    seq: int
    body: Body = None
    flags: int = 0


# (op code, fields in wire order). Codes are part of the protocol: never renumber.
OP_LAYOUTS: dict[type, tuple[int, str]] = {
    ops.Write: (1, "path:s offset:Q data:*"), ops.Truncate: (2, "path:s size:Q"),
    ops.Fallocate: (3, "path:s mode:I offset:Q length:Q"), ops.Create: (4, "path:s mode:I"),
    ops.Mknod: (5, "path:s mode:I rdev:Q"), ops.Mkdir: (6, "path:s mode:I"),
    ops.Unlink: (7, "path:s"), ops.Rmdir: (8, "path:s"), ops.Rename: (9, "src:s dst:s flags:I"),
    ops.Link: (10, "src:s dst:s"), ops.Symlink: (11, "target:s path:s"),
    ops.Chmod: (12, "path:s mode:I"), ops.Chown: (13, "path:s uid:q gid:q"),
    ops.Utimens: (14, "path:s atime_ns:q mtime_ns:q"),
    ops.SetXattr: (15, "path:s name:s flags:I value:*"), ops.RemoveXattr: (16, "path:s name:s"),
    ops.Fsync: (17, "path:s datasync:?"),
}  # fmt: skip
OP_CODES = {cls: code for cls, (code, _) in OP_LAYOUTS.items()}
_FIELDS = {
    cls: tuple(tuple(f.split(":")) for f in lay.split()) for cls, (_, lay) in OP_LAYOUTS.items()
}
_BY_CODE = {code: cls for cls, code in OP_CODES.items()}
for _cls, _f in _FIELDS.items():  # an op gained or lost a field: the layout must follow
    if {name for name, _ in _f} != set(_cls.__dataclass_fields__):
        raise ImportError(f"wire.OP_LAYOUTS[{_cls.__name__}] does not match its dataclass")
_RAW_LIMIT = {ops.Write: MAX_WRITE_DATA, ops.SetXattr: MAX_XATTR}


def _str(text: str, strict: bool = False) -> bytes:
    raw = text.encode("utf-8", "strict" if strict else "surrogateescape")
    if len(raw) > MAX_NAME:
        raise ValueError(f"string of {len(raw)} bytes exceeds {MAX_NAME}: {text[:40]!r}...")
    return _U16.pack(len(raw)) + raw


def op_payload(op: Op) -> bytes:
    """The OP frame payload for ``op``. Raises ValueError if a field does not fit."""
    return b"".join(op_payload_parts(op))


def op_payload_parts(op: Op) -> tuple[bytes, ...]:
    """``op_payload`` in pieces whose concatenation is the payload: a Write's data stays a
    separate piece, so a sender can hand it to the socket without copying it."""
    cls = type(op)
    fields = _FIELDS.get(cls)
    if fields is None:
        raise ValueError(f"not a replication op: {op!r}")
    parts, raw = [_U8.pack(OP_CODES[cls])], None
    for name, code in fields:
        value = getattr(op, name)
        if code == "s":
            parts.append(_str(value))
        elif code == "*":
            if len(value) > _RAW_LIMIT[cls]:
                raise ValueError(f"{cls.__name__}.{name} of {len(value)} bytes is too big")
            raw = value
        else:
            try:
                parts.append(_FIELD[code].pack(value))
            except struct.error:
                raise ValueError(f"{cls.__name__}.{name}={value!r} out of range") from None
    return (b"".join(parts),) if raw is None else (b"".join(parts), raw)


def frame_header(ftype: FrameType, seq: int, length: int, flags: int = 0) -> bytes:
    """The 22-byte header of a frame with a ``length``-byte payload."""
    if length > MAX_PAYLOAD:
        raise ValueError(f"payload of {length} bytes exceeds {MAX_PAYLOAD}")
    head = HEADER.pack(MAGIC, VERSION, ftype, flags, seq, length)
    return head + _U32.pack(zlib.crc32(head))


def encode_body(ftype: FrameType, body: Body = None) -> bytes:
    """The payload of a frame of type ``ftype`` carrying ``body`` (see ``Frame``)."""
    if ftype is FrameType.OP:
        return op_payload(body)  # type: ignore[arg-type]
    if ftype is FrameType.ACK:
        return _U64.pack(body)
    if ftype in (FrameType.NACK, FrameType.ERROR):
        assert isinstance(body, Fault)
        msg = body.message.encode("utf-8", "backslashreplace")[:MAX_NAME]
        return _U32.pack(body.errno) + _str(msg.decode("utf-8", "ignore"), strict=True)
    if ftype is FrameType.HELLO:
        assert isinstance(body, Hello)
        head = _HELLO.pack(body.protocol, _MODE_CODES[Mode(body.mode)])
        return head + b"".join(_str(s, True) for s in (body.module, body.node_id, body.generation))
    if ftype is FrameType.HELLO_ACK:
        assert isinstance(body, HelloAck)
        return _U8.pack(int(body.accepted)) + _str(body.reason, strict=True)
    if ftype in (FrameType.REQUEST, FrameType.REPLY):
        return bytes(body or b"")  # type: ignore[arg-type]
    return b""  # PING, PONG


def encode_frame(ftype: FrameType, seq: int, body: Body = None, flags: int = 0) -> bytes:
    """One complete frame. Raises ValueError for a body that cannot be encoded."""
    payload = encode_body(ftype, body)
    return frame_header(ftype, seq, len(payload), flags) + payload


class _Reader:
    """Bounds-checked cursor over one payload; every overrun is a WireError."""

    __slots__ = ("buf", "pos", "end", "what", "owned")

    def __init__(self, buf: memoryview, what: str, owned: bool = False) -> None:
        self.buf, self.pos, self.end, self.what = buf, 0, len(buf), what
        self.owned = owned

    def take(self, n: int, field: str) -> memoryview:
        if self.end - self.pos < n:
            raise WireError(f"truncated {field} in {self.what}")
        self.pos += n
        return self.buf[self.pos - n : self.pos]

    def num(self, st: struct.Struct, field: str) -> int:
        return st.unpack(self.take(st.size, field))[0]

    def str(self, field: str, strict: bool = False) -> str:
        n = self.num(_U16, field)
        if n > MAX_NAME:
            raise WireError(f"{field} of {n} bytes in {self.what} exceeds {MAX_NAME}")
        raw = bytes(self.take(n, field))
        try:
            return raw.decode("utf-8", "strict" if strict else "surrogateescape")
        except UnicodeDecodeError:
            raise WireError(f"{field} in {self.what} is not UTF-8") from None

    def rest(self) -> bytes:
        # A frame read into a buffer of its own (FrameDecoder, big payloads) lends it
        # read-only: Write data then reaches pwrite without a copy.
        view = self.buf[self.pos : self.end]
        data = view.toreadonly() if self.owned else view.tobytes()
        self.pos = self.end
        return data  # type: ignore[return-value]

    def done(self) -> None:
        if self.pos != self.end:
            raise WireError(f"{self.end - self.pos} trailing bytes in {self.what}")


def decode_op(payload: memoryview, owned: bool = False) -> Op:
    """The op in an OP frame's payload (``owned``: nobody else writes that buffer, so
    its raw tail may be kept without a copy). Raises WireError."""
    if not payload:
        raise WireError("empty OP payload")
    cls = _BY_CODE.get(payload[0])
    if cls is None:
        raise WireError(f"unknown op code {payload[0]}")
    r = _Reader(payload[1:], cls.__name__, owned)
    values: dict[str, object] = {}
    for name, code in _FIELDS[cls]:
        if code == "s":
            values[name] = r.str(name)
        elif code == "*":
            if r.end - r.pos > _RAW_LIMIT[cls]:
                raise WireError(f"{cls.__name__}.{name} exceeds {_RAW_LIMIT[cls]} bytes")
            values[name] = r.rest()
        else:
            value = r.num(_FIELD[code], name)
            if code == "?":
                if value > 1:
                    raise WireError(f"{cls.__name__}.{name} is not a boolean")
                value = bool(value)
            values[name] = value
    r.done()
    return cls(**values)


def decode_body(ftype: FrameType, flags: int, payload: memoryview, owned: bool = False) -> Body:
    if ftype is FrameType.OP:
        return decode_op(payload, owned)
    r = _Reader(payload, ftype.name)  # REQUEST/REPLY bodies stay bytes
    body: Body = None
    if ftype is FrameType.ACK:
        body = r.num(_U64, "applied")
    elif ftype in (FrameType.NACK, FrameType.ERROR):
        body = Fault(r.num(_U32, "errno"), r.str("message", strict=True))
    elif ftype is FrameType.HELLO:
        protocol, mode = r.num(_U16, "protocol"), r.num(_U8, "mode")
        if mode not in _MODES:
            raise WireError(f"unknown mode {mode} in HELLO")
        names = [r.str(f, strict=True) for f in ("module", "node_id", "generation")]
        body = Hello(*names, mode=_MODES[mode], protocol=protocol)
    elif ftype is FrameType.HELLO_ACK:
        accepted = r.num(_U8, "accepted")
        if accepted > 1:
            raise WireError("HELLO_ACK.accepted is not a boolean")
        body = HelloAck(bool(accepted), r.str("reason", strict=True))
    elif ftype in (FrameType.REQUEST, FrameType.REPLY):
        body = r.rest()
    r.done()
    return body


_TYPES = {int(t): t for t in FrameType}
