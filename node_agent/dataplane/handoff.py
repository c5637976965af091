"""Handing an accepted replication connection from the agent's router to a data plane.

The router reads the route (which module), then passes the socket itself over the data
plane's abstract Unix socket (SCM_RIGHTS) with a line proving it knows the token:
``<token> <peer address> <peer port>\\n``. The data plane checks the token and that the
sender runs as its own user, then does the TLS handshake on the socket (the router never
sees a byte of TLS). One Unix connection per handed-off socket: rare (a primary connects
once per stream) and nothing to frame.
"""

from __future__ import annotations

import hmac
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)
MAX_LINE = 512


class HandoffError(OSError):
    """The data plane cannot take the connection (not running, refused)."""


def hand_off(
    name: str, token: str, conn: socket.socket, addr: tuple, timeout_s: float = 2.0
) -> None:
    """Pass ``conn`` to the data plane listening on abstract ``name`` (blocking, quick)."""
    line = f"{token} {addr[0]} {addr[1]}\n".encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix:
        unix.settimeout(timeout_s)
        try:
            unix.connect("\0" + name)
            socket.send_fds(unix, [line], [conn.fileno()])
            if unix.recv(16) != b"ok\n":
                raise HandoffError("the data plane refused the connection")
        except OSError as e:
            if isinstance(e, HandoffError):
                raise
            raise HandoffError(f"data plane not reachable: {e}") from None


class HandoffServer:
    """The data plane's end: a thread accepting handed-off sockets."""

    def __init__(
        self, name: str, token: str, deliver: Callable[[socket.socket, tuple], None]
    ) -> None:
        self._token = token.encode()
        self._deliver = deliver
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind("\0" + name)  # EADDRINUSE: another data plane of this module runs
        self._sock.listen(16)
        self._thread = threading.Thread(target=self._run, name="handoff", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._sock.close()

    def _run(self) -> None:
        while True:
            try:
                unix, _ = self._sock.accept()
            except OSError:
                return  # closed
            with unix:
                try:
                    self._take(unix)
                except Exception:
                    log.exception("handing over a replication connection failed")

    def _take(self, unix: socket.socket) -> None:
        unix.settimeout(2.0)
        creds = unix.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        msg, fds, _flags, _addr = socket.recv_fds(unix, MAX_LINE, 1)
        conns = [socket.socket(fileno=fd) for fd in fds]
        parts = msg.decode(errors="replace").split()
        ok = (
            uid == os.geteuid()
            and len(conns) == 1
            and len(parts) == 3
            and hmac.compare_digest(parts[0].encode(), self._token)
        )
        if not ok:
            log.warning("refused a handed-over connection (uid %d, %d fds, bad token or line)",
                        uid, len(conns))  # fmt: skip
            for c in conns:
                c.close()
            unix.sendall(b"no\n")
            return
        unix.sendall(b"ok\n")
        self._deliver(conns[0], (parts[1], int(parts[2]) if parts[2].isdigit() else 0))
