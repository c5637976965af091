"""The agent's log of transitions, commands and resource output: a bounded memory
ring for the API plus an append-only file in the data directory."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path

from node_agent.core.transitions import LogRecord
from protos import mirrorpair_pb2 as pb

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
log = logging.getLogger("mirrorpair.log")


def level_number(name: str, default: int = 20) -> int:
    return LEVELS.get(name.upper(), default) if name else default


class LogBook:
    def __init__(self, node_id: str, path: Path | None, capacity: int = 5000) -> None:
        self.node_id = node_id
        self.path = path
        self._entries: deque[pb.LogEntry] = deque(maxlen=capacity)
        self._seq = 0
        # Resources and replication log from worker threads too (libvirt calls, pairing).
        self._lock = threading.RLock()
        self._file = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the book

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
        log.log(LEVELS.get(entry.level, 20), "%s", line)
        if self._file is not None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(entry.time))
            try:
                self._file.write(f"{stamp} {entry.level:7} {line}\n")
            except OSError as exc:  # a full disk must not stop the agent
                log.error("cannot write %s: %s", self.path, exc)

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
