"""The agent's log of transitions, commands and resource output: a bounded memory
ring for the API plus an append-only file in the data directory (one JSON entry a line).

A restarted agent reloads the file's tail into the ring, its seq numbers going on, so the
console shows what happened before the restart; a torn last line (SIGKILL mid-write) is
cut off. The file is rotated at MAX_FILE_BYTES (one old file kept). Each entry is also
logged through Python logging with journal fields MODULE, STATE, CAUSE, WHO
(node_agent/logging_setup.py)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path

from node_agent.core.transitions import LogRecord
from node_agent.logging_setup import JOURNAL_FIELDS
from protos import mirrorpair_pb2 as pb

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
MAX_FILE_BYTES = 8 << 20  # with the one old file: at most 16 MiB, ~50000 entries
log = logging.getLogger("mirrorpair.log")


def entry_line(entry: pb.LogEntry) -> str:
    """One file line: the fields set, enums as numbers (no newline inside: json escapes)."""
    d = {fd.name: value for fd, value in entry.ListFields()}
    return json.dumps(d, separators=(",", ":"), ensure_ascii=False)


_NAMES = frozenset(pb.LogEntry.DESCRIPTOR.fields_by_name)


def parse_lines(lines: Iterable[str]) -> list[pb.LogEntry]:
    """The entries of file lines; a line that is not one (torn, older format) is skipped,
    a field a newer agent added is ignored."""
    out = []
    for line in lines:
        try:
            d = json.loads(line)
            e = pb.LogEntry(**{k: v for k, v in d.items() if k in _NAMES})
        except (ValueError, TypeError, AttributeError):
            continue
        out.append(e)
    return out


def journal_fields(entry: pb.LogEntry) -> dict[str, str]:
    """MODULE, STATE (the new one, for a transition), CAUSE, WHO for the journal."""
    state = pb.ModuleState.Name(entry.new_state).removeprefix("STATE_") if entry.new_state else ""
    return {"MODULE": entry.module, "STATE": state, "CAUSE": entry.cause, "WHO": entry.who}


def _read_tail(path: Path, max_bytes: int) -> list[str]:
    """The complete lines among the last ``max_bytes`` of ``path`` ([] if none)."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    lines = data.decode("utf-8", "replace").split("\n")
    if size > max_bytes:
        lines = lines[1:]  # the first one is cut
    return lines[:-1]  # after the last newline: "" or a torn line


def _cut_torn_tail(path: Path) -> None:
    """Drop bytes after the last newline (a write cut by SIGKILL), so the next line
    starts on a line of its own."""
    with contextlib.suppress(OSError), open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        pos = size
        while pos > 0:
            step = min(4096, pos)
            f.seek(pos - step)
            nl = f.read(step).rfind(b"\n")
            if nl >= 0:
                pos = pos - step + nl + 1
                break
            pos -= step
        if pos < size:
            f.truncate(pos)


def level_number(name: str, default: int = 20) -> int:
    return LEVELS.get(name.upper(), default) if name else default


class LogBook:
    def __init__(
        self,
        node_id: str,
        path: Path | None,
        capacity: int = 5000,
        max_file_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        self.node_id = node_id
        self.path = path
        self.max_file_bytes = max_file_bytes
        self._entries: deque[pb.LogEntry] = deque(maxlen=capacity)
        self._seq = 0
        # Resources and replication log from worker threads too (libvirt calls, pairing).
        self._lock = threading.RLock()
        self._file = None
        self._size = 0
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._reload(path, capacity)
            self._open()

    def _reload(self, path: Path, capacity: int) -> None:
        """The newest ``capacity`` entries of the files into the ring (bounded reads:
        an entry line is well under 2 KiB), without logging them again."""
        budget = capacity * 2048
        lines = _read_tail(path, budget)[-capacity:]
        if len(lines) < capacity:
            lines = _read_tail(self._old_path(path), budget)[-(capacity - len(lines)) :] + lines
        entries = parse_lines(lines)  # only the lines kept: parsing is the slow part
        self._entries.extend(entries)
        self._seq = max((e.seq for e in entries), default=0)
        _cut_torn_tail(path)

    @staticmethod
    def _old_path(path: Path) -> Path:
        return path.with_name(path.name + ".1")

    @property
    def seq(self) -> int:
        return self._seq

    def add(
        self,
        level: str,
        message: str,
        module: str = "",
        cause: str = "",
        who: str = "",
        when: float | None = None,
    ) -> pb.LogEntry:
        with self._lock:
            self._seq += 1
            entry = pb.LogEntry(
                time=time.time() if when is None else when,
                node_id=self.node_id,
                module=module,
                level=level.upper(),
                message=message,
                cause=cause,
                who=who,
                seq=self._seq,
            )
            self._store(entry)
        return entry

    def add_record(self, rec: LogRecord) -> pb.LogEntry:
        with self._lock:
            return self._add_record(rec)

    def _add_record(self, rec: LogRecord) -> pb.LogEntry:
        self._seq += 1
        entry = pb.LogEntry(
            time=rec.time,
            node_id=self.node_id,
            module=rec.module,
            level=rec.level,
            message=rec.message,
            cause=rec.cause,
            who=rec.who,
            seq=self._seq,
            old_state=rec.old_state.value if rec.old_state else 0,
            new_state=rec.new_state.value if rec.new_state else 0,
            old_readiness=rec.old_readiness.value if rec.old_readiness else 0,
            new_readiness=rec.new_readiness.value if rec.new_readiness else 0,
        )
        self._store(entry)
        return entry

    def _store(self, entry: pb.LogEntry) -> None:
        self._entries.append(entry)
        who = f" by {entry.who}" if entry.who else ""
        cause = f" [{entry.cause}{who}]" if entry.cause else ""
        line = f"{entry.module or '-'}: {entry.message}{cause}"
        log.log(LEVELS.get(entry.level, 20), "%s", line,
                extra={JOURNAL_FIELDS: journal_fields(entry)})  # fmt: skip
        if self._file is not None:
            data = (entry_line(entry) + "\n").encode("utf-8", "replace")
            try:
                self._file.write(data)  # one write() a line: SIGKILL leaves whole lines
                self._size += len(data)
                if self._size >= self.max_file_bytes:
                    self._rotate()
            except OSError as exc:  # a full disk must not stop the agent
                log.error("cannot write %s: %s", self.path, exc)

    def _open(self) -> None:
        assert self.path is not None
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - as long as the book
        self._size = self._file.seek(0, os.SEEK_END)

    def _rotate(self) -> None:
        assert self._file is not None and self.path is not None
        self._file.close()
        try:
            os.replace(self.path, self._old_path(self.path))
        finally:
            self._open()

    def since(self, seq: int, min_level: int = 0) -> list[pb.LogEntry]:
        with self._lock:
            entries = list(self._entries)
        return [e for e in entries if e.seq > seq and LEVELS.get(e.level, 20) >= min_level]

    def query(
        self, module: str = "", limit: int = 200, min_level: str = "", text: str = ""
    ) -> list[pb.LogEntry]:
        floor = level_number(min_level)
        needle = text.lower()
        with self._lock:
            entries = list(self._entries)
        out = [
            e
            for e in entries
            if (not module or e.module == module)
            and LEVELS.get(e.level, 20) >= floor
            and (not needle or needle in e.message.lower() or needle in e.cause.lower())
        ]
        return out[-(limit or 200) :]

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
