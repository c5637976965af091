"""A fake journald for tests: a unix datagram socket in a tmp dir that decodes each
entry sent by the native protocol (node_agent/journal.py), memfd-passed ones included.
Give its path to agents in MIRRORPAIR_JOURNAL_SOCKET.

    with FakeJournal(tmp_path / "journal.sock") as journal:
        entry = journal.wait_for(lambda e: e.get("MODULE") == "web")
"""

from __future__ import annotations

import array
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from node_agent.journal import decode

Entry = dict[str, str]


class FakeJournal:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.entries: list[Entry] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(self.path))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-journal", daemon=True)

    def __enter__(self) -> FakeJournal:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, anc, _, _ = self._sock.recvmsg(1 << 20, socket.CMSG_SPACE(4))
            except TimeoutError:
                continue
            except OSError as e:
                self.errors.append(str(e))
                return
            for level, kind, payload in anc:  # too large for a datagram: a sealed memfd
                if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):
                    fds = array.array("i")
                    fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                    for fd in fds:
                        data += os.pread(fd, os.fstat(fd).st_size, 0)
                        os.close(fd)
            try:
                fields = decode(data)
            except ValueError as e:
                self.errors.append(f"{e}: {data[:200]!r}")
                continue
            with self._lock:
                self.entries.append({k: v.decode("utf-8", "replace") for k, v in fields})

    def snapshot(self) -> list[Entry]:
        with self._lock:
            return list(self.entries)

    def wait_for(self, match: Callable[[Entry], bool], timeout: float = 20.0) -> Entry:
        deadline = time.monotonic() + timeout
        while True:
            for e in self.snapshot():
                if match(e):
                    return e
            if time.monotonic() > deadline:
                tail = "\n".join(str(e) for e in self.snapshot()[-15:])
                raise AssertionError(f"no such journal entry within {timeout:g}s; last:\n{tail}")
            time.sleep(0.05)
