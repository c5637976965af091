"""The rig of the ModuleReplication tests (test_replication_module.py, test_resync_module.py):
real FUSE mounts, real mutual-TLS streams on 127.0.0.1. The fixtures ``pki`` and ``nodes``
are in tests/integration/conftest.py.

node1, the primary: a ModuleReplication whose directory is mounted (FUSE over its copy).
node2, the secondary: a StreamReceiver (own event loop thread) whose resolve and request
hook go to a second ModuleReplication in SECOND role (resync.server and
roles.secondary.CopyApplier over its own copy directory). Both use certificates of a CA
made in tmp_path.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import shutil
import socket
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node_agent.config.model import NodePaths
from node_agent.replication import ops
from node_agent.replication.local.apply import Applier
from node_agent.replication.local.scan import DIR, FILE, scan_tree
from node_agent.replication.module_repl import ModuleReplication
from node_agent.replication.roles.primary import Mode
from node_agent.replication.stream.listener import RouteListener
from node_agent.replication.stream.receiver import StreamReceiver

MiB = 1 << 20


def deliver_to(rx: StreamReceiver):  # noqa: ANN201
    """The replication port's delivery when this process is itself the secondary (the
    agent's hands the socket to a data plane instead: node_agent/dataplane/router.py)."""

    async def deliver(module: str, conn: socket.socket, addr: tuple) -> None:
        rx.adopt(conn, addr)

    return deliver


@dataclass(frozen=True)
class Pki:
    dir: Path

    def paths(self, name: str) -> NodePaths:
        d = self.dir
        return NodePaths(d, d / "ca" / "ca.pem", d / "certs" / f"{name}.pem",
                         d / "certs" / f"{name}.key")  # fmt: skip


class Node2:
    """The secondary: receiver + ModuleReplication in SECOND role; records applied ops."""

    def __init__(self, tmp: Path, pki: Pki, dirs: int = 1) -> None:
        self.pki, self.root, self.tmp, self.dirs = pki, tmp / "n2" / "copy", tmp, dirs
        self.history: tuple[str, ...] = ()
        self.applied: list[ops.Op] = []
        self.apply_delay_s = 0.0  # a slow secondary: ACKs lag behind
        self.mr = self._replication("boot-1")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.rx: StreamReceiver | None = None
        self.port = 0

    def _replication(self, kernel: str) -> ModuleReplication:
        return ModuleReplication(
            "mod", [self.tmp / f"n2-unused{i}" for i in range(self.dirs)], self.root,
            self.tmp / "n2" / "track", "node2", "node1", "127.0.0.1", 0,
            self.pki.paths("node2"), on_resync_done=self._done, kernel=kernel,
        )  # fmt: skip

    def reboot(self, kernel: str) -> None:
        """The agent comes back (its records reloaded from disk) under ``kernel``'s boot
        id: a new one means its machine restarted (its unsynced writes may be gone)."""
        self.kill()
        self.mr = self._replication(kernel)
        self.start()

    def _done(self, generation: str, history: tuple[str, ...]) -> None:
        self.history = history

    def _resolve(self, module: str) -> Applier | None:
        applier = self.mr.secondary_applier() if module == "mod" else None
        if applier is not None:
            apply = applier.apply

            def recording(op: ops.Op) -> None:
                time.sleep(self.apply_delay_s)
                apply(op)
                self.applied.append(op)

            applier.apply = recording  # type: ignore[method-assign]
        return applier

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def start(self) -> None:
        """Listen (again on the same port after kill) and be SECOND."""
        self.mr.become_secondary(self.history)
        self.rx = StreamReceiver(
            node_id="node2", peer="node1", tls=self.pki.paths("node2"), resolve=self._resolve,
            handle_request=lambda module, body: self.mr.handle_request(body),
        )  # fmt: skip
        self.listener = RouteListener("127.0.0.1", self.port, deliver_to(self.rx))
        self.port = self.call(self.listener.start())

    def kill(self) -> None:
        """The secondary disappears: listener and streams closed."""
        if self.rx is not None:
            self.call(self.listener.close())
            self.call(self.rx.close())
            self.rx = None
        self.mr.leave_secondary()

    def close(self) -> None:
        self.kill()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class Node1:
    """The primary's ModuleReplication, its callbacks recorded. A hold is resolved at once
    by ``gate`` (True: open, as once the peer acknowledged it is outdated; False: fence;
    None: left to the test) -- the engine's write gate, in short."""

    def __init__(self, tmp: Path, pki: Pki, port: int, dirs: int = 1, **kw: Any) -> None:
        self.root, self.mnt = tmp / "n1" / "copy", tmp / "mnt"
        mounts = [self.mnt] + [tmp / f"mnt{i}" for i in range(1, dirs)]
        self.events: list[tuple[str, ...]] = []
        self._cond = threading.Condition()
        self.gate: bool | None = True
        self.mr = ModuleReplication(
            "mod", mounts, self.root, tmp / "n1" / "track", "node1", "node2", "127.0.0.1",
            port, pki.paths("node1"), ack_timeout_s=3.0,
            on_degraded=self._held,
            on_replicating=lambda: self._event("replicating"),
            on_resync_failed=lambda r: self._event("failed", r), **kw,
        )  # fmt: skip

    def _event(self, *ev: str) -> None:
        with self._cond:
            self.events.append(ev)
            self._cond.notify_all()

    def _held(self, reason: str, hold: str, requested: bool) -> None:
        if self.gate is not None:
            self.mr.resolve_hold(hold, self.gate)
        self._event("degraded", reason, hold)

    def wait_for(self, *kinds: str, timeout: float = 120.0) -> tuple[str, ...]:
        """The first event of one of ``kinds`` not yet consumed."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i, ev in enumerate(self.events):
                    if ev[0] in kinds:
                        return self.events.pop(i)
                left = deadline - time.monotonic()
                assert left > 0, f"no {kinds} event within {timeout} s: {self.events}"
                self._cond.wait(left)

    def pair(self, n2: Node2, peer_gen: str | None, *, fullsync: bool = False) -> dict:
        self.mr.peer_is_secondary(peer_gen, transient=True, fullsync=fullsync)
        ev = self.wait_for("replicating", "failed")
        assert ev == ("replicating",), ev
        assert self.mr.primary.mode is Mode.REPLICATE
        return self.mr.status()


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def tree(root: Path, times: bool = True) -> dict[str, tuple]:
    """What must be equal on both copies (inode numbers aside)."""
    out = {}
    for e in scan_tree(root).values():
        if e.path:
            t = (e.mtime_ns,) if times and e.kind != DIR else ()
            data = digest(root / e.path) if e.kind == FILE else e.target
            out[e.path] = (e.kind, stat.S_IMODE(e.mode), e.uid, e.gid, e.size, data, *t)
    return out


def random_file(path: Path, size: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        for _ in range(size // MiB):
            f.write(rnd.randbytes(MiB))


def write_behind(path: Path, offset: int, data: bytes, keep_times: bool = True) -> None:
    """Change a copy as if while its agent was stopped: no record of it; with
    ``keep_times`` its size and mtime do not show it either."""
    st = path.stat()
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)
    if keep_times:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def twin(src: Path, dst: Path) -> None:
    """The same file on the secondary, times included (an identical copy)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


def in_thread(fn: Callable[[], None]) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t
