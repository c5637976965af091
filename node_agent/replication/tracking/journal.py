"""A small durable store: an atomic snapshot plus an append-only journal of CRC'd records.

Used by the zone bitmap and the activity log. ``append`` writes records without
syncing and returns a sequence number; ``wait_durable(seq)`` returns once an
fdatasync covered that record -- one fdatasync serves every thread that appended
meanwhile (group commit). ``rewrite`` replaces everything by a new snapshot
(compaction, clear). The snapshot and the journal carry an *epoch*: after a crash
between writing a new snapshot and starting its fresh journal, the old journal's
records (already inside the snapshot) are ignored. A torn last record fails its CRC
and is cut off at open, so later appends stay readable.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Sequence
from pathlib import Path

_HEAD = struct.Struct("<II")  # payload length, crc32(payload)
_MAGIC = b"MPJ1"
_EPOCH = struct.Struct("<Q")


class JournalError(OSError):
    """The snapshot is unreadable: the store can no longer be trusted."""


def _frame(payload: bytes) -> bytes:
    return _HEAD.pack(len(payload), zlib.crc32(payload)) + payload


def _unframe(buf: bytes, pos: int) -> tuple[bytes, int] | None:
    """The payload at pos and the next position, or None if short or corrupt (torn)."""
    if pos + _HEAD.size > len(buf):
        return None
    length, crc = _HEAD.unpack_from(buf, pos)
    end = pos + _HEAD.size + length
    if end > len(buf):
        return None
    payload = buf[pos + _HEAD.size : end]
    return (payload, end) if zlib.crc32(payload) == crc else None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write, fsync, rename, fsync the directory: a crash leaves old or new, never half."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class Journal:
    def __init__(self, directory: Path, name: str) -> None:
        self.directory = Path(directory)
        self.snapshot_path = self.directory / f"{name}.snap"
        self.journal_path = self.directory / f"{name}.journal"
        self._cond = threading.Condition()
        self._fd = -1
        self._epoch = 0
        self._written = 0  # sequence of the last appended batch
        self._synced = 0  # every batch <= this is durable
        self._syncing = False
        self._failed: OSError | None = None
        self.records = 0  # records in the journal since the snapshot

    def _read(self) -> tuple[int, bytes | None, list[bytes], int | None, int]:
        """(epoch, snapshot, records, end of the intact records or None if the journal
        must start afresh, journal size), from the files as they are."""
        snapshot: bytes | None = None
        epoch = 0
        try:
            raw = self.snapshot_path.read_bytes()
        except FileNotFoundError:
            raw = None
        if raw is not None:
            framed = _unframe(raw, 0)
            if framed is None or not framed[0].startswith(_MAGIC):
                raise JournalError(f"snapshot {self.snapshot_path} is corrupt")
            body = framed[0][len(_MAGIC) :]
            epoch = _EPOCH.unpack_from(body)[0]
            snapshot = body[_EPOCH.size :]
        try:
            buf = self.journal_path.read_bytes()
        except FileNotFoundError:
            buf = b""
        head = _unframe(buf, 0)
        if head is None or head[0] != _MAGIC + _EPOCH.pack(epoch):
            # Missing, torn at birth, or from the epoch before the snapshot: start afresh.
            return epoch, snapshot, [], None, len(buf)
        records: list[bytes] = []
        pos = head[1]
        while (framed := _unframe(buf, pos)) is not None:
            records.append(framed[0])
            pos = framed[1]
        return epoch, snapshot, records, pos, len(buf)

    def peek(self) -> tuple[bytes | None, list[bytes]]:
        """The snapshot and the intact records, read without changing anything."""
        _epoch, snapshot, records, _end, _size = self._read()
        return snapshot, records

    def open(self) -> tuple[bytes | None, list[bytes]]:
        """Read the snapshot payload and every intact journal record; ready for appending."""
        if not self.directory.is_dir():
            self.directory.mkdir(parents=True)
            _fsync_dir(self.directory.parent)  # the new directory's own entry is durable too
        self._epoch, snapshot, records, end, size = self._read()
        if end is None:
            self._new_journal()
        else:
            self._fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND)
            if end < size:  # cut the torn tail, or new records would hide behind it
                os.ftruncate(self._fd, end)
                os.fsync(self._fd)
        self.records = len(records)
        self._failed = None
        return snapshot, records

    def _new_journal(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        _write_atomic(self.journal_path, _frame(_MAGIC + _EPOCH.pack(self._epoch)))
        self._fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND)
        self.records = 0

    def append(self, payloads: Sequence[bytes]) -> int:
        """Write records (not yet durable); returns the sequence to pass to wait_durable."""
        with self._cond:
            self._check()
            data = b"".join(_frame(p) for p in payloads)
            try:
                written = os.write(self._fd, data)
                if written != len(data):
                    raise OSError(f"short write to {self.journal_path}")
            except OSError as exc:
                self._failed = exc
                raise
            self._written += 1
            self.records += len(payloads)
            return self._written

    @property
    def last_seq(self) -> int:
        with self._cond:
            return self._written

    def wait_durable(self, seq: int) -> None:
        """Return once every batch up to seq is on disk; one fdatasync serves many threads."""
        with self._cond:
            while self._synced < seq:
                self._check()
                if self._syncing:
                    self._cond.wait()
                    continue
                self._syncing = True
                upto = self._written
                fd = self._fd
                self._cond.release()
                error: OSError | None = None
                try:
                    os.fdatasync(fd)
                except OSError as exc:
                    error = exc
                finally:
                    self._cond.acquire()
                    self._syncing = False
                    self._cond.notify_all()
                if error is not None:
                    # After a failed fdatasync the kernel may have dropped the pages:
                    # nothing appended so far can be trusted any more.
                    self._failed = error
                    raise error
                self._synced = max(self._synced, upto)

    def rewrite(self, snapshot: bytes) -> None:
        """Atomically replace the whole store by `snapshot` and an empty journal."""
        with self._cond:
            while self._syncing:  # never close the fd under a running fdatasync
                self._cond.wait()
            self.directory.mkdir(parents=True, exist_ok=True)
            epoch = self._epoch + 1
            try:
                frame = _frame(_MAGIC + _EPOCH.pack(epoch) + snapshot)
                _write_atomic(self.snapshot_path, frame)
                self._epoch = epoch  # the snapshot rename above is the commit point
                self._new_journal()
            except OSError as exc:
                self._failed = exc
                raise
            self._synced = self._written
            self._failed = None

    def _check(self) -> None:
        if self._failed is not None:
            raise OSError(f"journal {self.journal_path} failed earlier: {self._failed}")
        if self._fd < 0:
            raise RuntimeError("journal is not open")

    def close(self) -> None:
        with self._cond:
            while self._syncing:
                self._cond.wait()
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
