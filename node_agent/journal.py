"""journald's native protocol, without python-systemd (it needs a C build).

A journal entry is one datagram to /run/systemd/journal/socket holding fields, each
``KEY=value\\n``, or -- for a value holding a newline (or any byte) -- the binary-safe
form ``KEY\\n`` + value length (64-bit little endian) + value + ``\\n``. An entry too large
for a datagram goes in a sealed memfd passed with SCM_RIGHTS.
See https://systemd.io/JOURNAL_NATIVE_PROTOCOL/.

``encode``/``decode``/``field_name`` are pure; ``JournalSocket`` is the thin sender.
"""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import os
import re
import socket
import struct
from collections.abc import Iterable

DEFAULT_SOCKET = "/run/systemd/journal/socket"
_KEY = re.compile(rb"[A-Z0-9_]+")
_MAX_KEY = 64


class JournalDecodeError(ValueError):
    pass


def field_name(name: str) -> str:
    """A valid journal field name from ``name``: upper case, [A-Z0-9_], not starting with
    ``_`` (those are trusted fields only journald sets) or a digit, at most 64 chars."""
    out = re.sub(r"[^A-Z0-9_]", "_", name.upper()).lstrip("_")
    if not out or out[0].isdigit():
        out = "X_" + out
    return out[:_MAX_KEY]


def encode(fields: Iterable[tuple[str, str | bytes]]) -> bytes:
    """One entry's datagram. Keys must already be valid (``field_name``)."""
    parts: list[bytes] = []
    for key, value in fields:
        k = key.encode("ascii")
        if not _KEY.fullmatch(k) or len(k) > _MAX_KEY or k[:1] == b"_" or k[:1].isdigit():
            raise ValueError(f"invalid journal field name {key!r}")
        v = value.encode("utf-8", "replace") if isinstance(value, str) else bytes(value)
        if b"\n" in v:
            parts.append(k + b"\n" + struct.pack("<Q", len(v)) + v + b"\n")
        else:
            parts.append(k + b"=" + v + b"\n")
    return b"".join(parts)


def decode(data: bytes) -> list[tuple[str, bytes]]:
    """The fields of one entry (what journald parses; for tests and fake journals)."""
    out: list[tuple[str, bytes]] = []
    i = 0
    while i < len(data):
        nl = data.find(b"\n", i)
        if nl < 0:
            raise JournalDecodeError(f"field at byte {i} has no end")
        line = data[i:nl]
        eq = line.find(b"=")
        if eq >= 0:
            out.append((line[:eq].decode("ascii"), line[eq + 1 :]))
            i = nl + 1
            continue
        start = nl + 1 + 8
        if start > len(data):
            raise JournalDecodeError(f"field {line!r}: truncated length")
        (size,) = struct.unpack("<Q", data[nl + 1 : start])
        end = start + size
        if end + 1 > len(data) or data[end : end + 1] != b"\n":
            raise JournalDecodeError(f"field {line!r}: value of {size} bytes not terminated")
        out.append((line.decode("ascii"), data[start:end]))
        i = end + 1
    return out


class JournalSocket:
    """Sends encoded entries to journald (or the socket at ``path``, for tests)."""

    def __init__(self, path: str = DEFAULT_SOCKET) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        # journald may be busy: the agent's event loop must never block on its log.
        self._sock.setblocking(False)

    def send(self, data: bytes) -> None:
        """OSError when journald cannot take it (not running, full)."""
        try:
            self._sock.sendto(data, self.path)
        except OSError as e:
            if e.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                raise
            self._send_memfd(data)

    def _send_memfd(self, data: bytes) -> None:
        # Too large for one datagram: journald reads a sealed memfd passed with the message.
        fd = os.memfd_create("mirrorpair-journal", os.MFD_ALLOW_SEALING | os.MFD_CLOEXEC)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
            self._sock.sendmsg([], rights, 0, self.path)
        finally:
            os.close(fd)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
