"""Incremental decoding of the replication byte stream into frames (format: wire.py).

``FrameDecoder``: feed it bytes as they arrive, get whole frames back -- ``feed(data)``, or
without a copy (asyncio.BufferedProtocol, so TLS decrypts straight into the frame buffer):
``get_buffer(n)``, fill a prefix of it, ``buffer_updated(k)``; drop the view before the
next get_buffer. A payload bigger than READ_SIZE (a 1 MiB Write) is read into a buffer of
its own once its header is in: no compaction copies, and its data reaches the applier's
pwrite as a read-only view of that buffer, never copied again. After a WireError the
stream is unusable (framing is lost): every later call raises the same error.
"""

from __future__ import annotations

import ctypes
import struct
import zlib

from node_agent.replication.stream.wire import (
    FLAG_FAILED,
    HEADER,
    HEADER_LEN,
    MAGIC,
    MAX_PAYLOAD,
    READ_SIZE,
    VERSION,
    Frame,
    FrameType,
    WireError,
    decode_body,
)

_U32 = struct.Struct(">I")
_new_bytearray = ctypes.pythonapi.PyByteArray_FromStringAndSize
_new_bytearray.restype, _new_bytearray.argtypes = (
    ctypes.py_object,
    (ctypes.c_void_p, ctypes.c_ssize_t),
)


def _unfilled(n: int) -> bytearray:
    """n bytes, not zeroed (C API: from NULL): a big payload's buffer is read into in
    full before anything looks at it, and zeroing 1 MiB per frame was 12 % of the
    receiving thread's time."""
    return _new_bytearray(None, n)


_TYPES = {int(t): t for t in FrameType}


class FrameDecoder:
    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self._buf = bytearray()
        self._start = self._end = 0  # undecoded bytes are _buf[_start:_end]
        self._need = HEADER_LEN  # bytes the frame in progress needs in all
        self._max = max_payload
        self._error: WireError | None = None
        # A big payload in progress: its header fields, its own buffer, bytes in it so far.
        self._big: tuple[FrameType, int, int] | None = None
        self._big_buf = bytearray()
        self._big_have = 0

    @property
    def buffered(self) -> int:
        return self._end - self._start + self._big_have

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        view, frames = memoryview(data), []
        while view:
            with self.get_buffer(len(view)) as buf:
                n = min(len(buf), len(view))
                buf[:n] = view[:n]
            frames += self.buffer_updated(n)
            view = view[n:]
        return frames

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        if self._error is not None:
            raise self._error
        if self._big is not None:  # exactly the rest of the big payload
            return memoryview(self._big_buf)[self._big_have :]
        want = max(sizehint, READ_SIZE, self._need - self.buffered)
        if len(self._buf) - self._end < want:
            live = self._end - self._start  # compact, then grow; capacity stays
            self._buf[:live] = self._buf[self._start : self._end]
            self._start, self._end = 0, live
            if len(self._buf) < live + want:
                self._buf += bytes(live + want - len(self._buf))
        return memoryview(self._buf)[self._end : self._end + want]

    def buffer_updated(self, nbytes: int) -> list[Frame]:
        if self._error is not None:
            raise self._error
        frames: list[Frame] = []
        try:
            if self._big is not None:
                self._big_have += nbytes
                if self._big_have < len(self._big_buf):
                    return frames
                frames.append(self._finish_big())
            else:
                self._end += nbytes
            with memoryview(self._buf) as mv:
                while self._big is None:
                    frame, size = self._one(mv, self._start, self._end)
                    if frame is None:
                        self._need = size
                        break
                    frames.append(frame)
                    self._start += size
        except WireError as e:
            self._error = e
            raise
        if self._start == self._end:
            self._start = self._end = 0
        return frames

    def _finish_big(self) -> Frame:
        assert self._big is not None
        ftype, flags, seq = self._big
        payload, self._big, self._big_buf, self._big_have = self._big_buf, None, bytearray(), 0
        self._need = HEADER_LEN
        return Frame(ftype, seq, decode_body(ftype, flags, memoryview(payload), True), flags)

    def _one(self, mv: memoryview, pos: int, end: int) -> tuple[Frame | None, int]:
        """The frame at ``pos`` and its size, or (None, the size it needs). A big payload
        not yet all here moves to a buffer of its own (then: (None, 0))."""
        if end - pos < HEADER_LEN:
            return None, HEADER_LEN
        magic, version, ftype, flags, seq, length = HEADER.unpack_from(mv, pos)
        (crc,) = _U32.unpack_from(mv, pos + HEADER.size)
        if magic != MAGIC:
            raise WireError(f"bad magic {bytes(magic)!r}")
        if crc != zlib.crc32(mv[pos : pos + HEADER.size]):
            raise WireError("header checksum mismatch")
        if version != VERSION:
            raise WireError(f"unsupported frame version {version}")
        if ftype not in _TYPES:
            raise WireError(f"unknown frame type {ftype}")
        if flags & ~(FLAG_FAILED if ftype == FrameType.REPLY else 0):
            raise WireError(f"unknown flags {flags:#x} on {_TYPES[ftype].name}")
        if length > self._max:
            raise WireError(f"payload of {length} bytes exceeds {self._max}")
        start = pos + HEADER_LEN
        if end - start < length:
            if length <= READ_SIZE or _TYPES[ftype] is not FrameType.OP:
                return None, HEADER_LEN + length
            have = end - start
            self._big = (_TYPES[ftype], flags, seq)
            self._big_buf = _unfilled(length)
            self._big_buf[:have] = mv[start:end]
            self._big_have = have
            self._start = self._end = 0  # everything buffered was this frame's
            return None, 0
        body = decode_body(_TYPES[ftype], flags, mv[start : start + length])
        return Frame(_TYPES[ftype], seq, body, flags), HEADER_LEN + length
