"""A small systemd notify-socket listener for tests: an abstract unix datagram socket
that also learns each sender's pid (SO_PASSCRED), as systemd does."""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Notice:
    pid: int
    lines: tuple[str, ...]
    at: float  # time.monotonic() when read


class NotifyListener:
    def __init__(self) -> None:
        self.name = f"@mirrorpair-test-notify-{os.getpid()}-{time.monotonic_ns()}"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self._sock.bind(b"\0" + self.name[1:].encode())
        self._sock.setblocking(False)
        self.notices: list[Notice] = []

    def read_all(self) -> list[Notice]:
        """Every datagram queued now (all that was sent before this call)."""
        got = []
        space = socket.CMSG_SPACE(struct.calcsize("3i"))
        while True:
            try:
                data, anc, _flags, _addr = self._sock.recvmsg(4096, space)
            except BlockingIOError:
                break
            pid = 0
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", payload[: struct.calcsize("3i")])[0]
            got.append(Notice(pid, tuple(data.decode().split("\n")), time.monotonic()))
        self.notices.extend(got)
        return got

    def lines(self, pid: int | None = None) -> list[str]:
        return [ln for n in self.notices if pid is None or n.pid == pid for ln in n.lines]

    def wait_for(self, what: str, ok: Callable[[], bool], timeout: float = 30.0,
                 each: Callable[[Notice], None] | None = None) -> None:  # fmt: skip
        """Poll until ``ok()`` (``each`` sees every notice as it is read)."""
        deadline = time.monotonic() + timeout
        while True:
            for notice in self.read_all():
                if each is not None:
                    each(notice)
            if ok():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout:g}s; got {self.notices[-20:]}")
            time.sleep(0.02)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> NotifyListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
