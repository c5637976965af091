"""`mirrorpair demo kill|restart NODE`: a running demo obeys requests on a Unix socket in
its folder (<root>/demo.sock), so that an agent "crashed" from another terminal can be
brought back by the demo that supervises it (and is still stopped by its Ctrl-C).

One request per connection, one line each way: "kill node1" -> "ok: ..." or "error: ...".
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

SOCKET_NAME = "demo.sock"
ACTIONS = ("kill", "restart")
REPLY_TIMEOUT_S = 60.0  # a restart waits until the agent answers (up to 30 s)


class DemoControlError(RuntimeError):
    """No running demo found (or it did not answer)."""


class DemoRefused(DemoControlError):
    """The demo answered: it cannot do that (e.g. kill an agent that is not running)."""


Handler = Callable[[str, str], str]  # (action, node) -> message; raises to refuse


class ControlServer:
    """Serves requests on <root>/demo.sock in a thread; ``handler`` does the work."""

    def __init__(self, root: Path, handler: Handler) -> None:
        self.path = root / SOCKET_NAME
        self._handler = handler
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(self.path))
        os.chmod(self.path, 0o600)  # killing agents is for the demo's owner only
        self._sock.listen(4)
        self._thread = threading.Thread(target=self._serve, daemon=True, name="demo-control")
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:  # closed
                return
            with conn:
                conn.settimeout(5)
                try:
                    action, _, node = conn.recv(256).decode().strip().partition(" ")
                    if action not in ACTIONS:
                        raise ValueError(f"unknown request {action!r}")
                    reply = "ok: " + self._handler(action, node)
                except Exception as e:  # noqa: BLE001 - every refusal goes back to the asker
                    reply = f"error: {e}"
                with contextlib.suppress(OSError):
                    conn.sendall(reply.encode() + b"\n")

    def close(self) -> None:
        self._sock.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


def running_demos() -> list[Path]:
    """Folders of demos started with a temporary folder that still answer."""
    pattern = Path(tempfile.gettempdir()).glob(f"mirrorpair-demo-*/{SOCKET_NAME}")
    return sorted(p.parent for p in pattern if _answers(p))


def _answers(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(path))
        return True
    except OSError:
        return False


def find_demo(directory: Path | None, config: Path | None) -> Path:
    """The demo folder to talk to: ``directory``, else the folder of ``config`` (the CLI's
    --config) when a demo runs there, else the only running demo."""
    if directory is not None:
        return directory
    if config is not None and (config.parent / SOCKET_NAME).exists():
        return config.parent
    found = running_demos()
    if len(found) == 1:
        return found[0]
    if not found:
        raise DemoControlError("no running demo found; give --dir DIR (the demo's folder)")
    raise DemoControlError(
        f"several demos run ({', '.join(map(str, found))}); give --dir DIR to choose one"
    )


def send(root: Path, action: str, node: str) -> str:
    """Ask the demo in ``root``; its message, or DemoControlError."""
    path = root / SOCKET_NAME
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(REPLY_TIMEOUT_S)
            s.connect(str(path))
            s.sendall(f"{action} {node}\n".encode())
            reply = s.makefile().readline().strip()
    except OSError as e:
        raise DemoControlError(f"no demo answers at {path}: {e.strerror or e}") from None
    status, _, message = reply.partition(": ")
    if not reply:
        raise DemoControlError(f"the demo at {root} closed the connection without an answer")
    if status != "ok":
        raise DemoRefused(message)
    return message
