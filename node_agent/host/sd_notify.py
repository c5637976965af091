"""The systemd notify protocol, spoken by the agent itself (no library): a datagram of
``KEY=value`` lines to the unix socket named by NOTIFY_SOCKET (see sd_notify(3)).

``ServiceNotifier`` sends what ``NotifyPlan`` decides, from a callback of the agent's
event loop: the watchdog is petted only while that loop runs, so a loop blocked by a
stuck call stops the petting and systemd restarts the agent (the data planes serve on).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, MutableMapping, Sequence

from node_agent.host.service_plan import (
    NOTIFY_VARS,
    NotifyPlan,
    ServiceEnv,
    read_service_env,
    status_line,
)
from protos import mirrorpair_pb2 as pb

log = logging.getLogger(__name__)


def take_service_env(environ: MutableMapping[str, str]) -> ServiceEnv:
    """Read systemd's variables and remove them: the data planes and applications the
    agent starts must not talk to its notify socket (NotifyAccess=main would refuse them
    anyway, with a warning per message)."""
    env = read_service_env(environ, os.getpid())
    for name in NOTIFY_VARS:
        environ.pop(name, None)
    return env


def socket_address(name: str) -> str | bytes:
    """``@name`` is an abstract socket: a leading NUL byte on the wire."""
    return b"\0" + name[1:].encode() if name.startswith("@") else name


class NotifySocket:
    """Sends notify datagrams; never blocks the loop (a full queue drops the message)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._address = socket_address(name)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._sock.setblocking(False)
        self._failing = False

    def send(self, lines: Sequence[str]) -> bool:
        if not lines:
            return True
        try:
            self._sock.sendto("\n".join(lines).encode(), self._address)
        except OSError as e:
            if not self._failing:  # said once, not every half second
                log.warning("cannot notify systemd at %s: %s", self.name, e)
            self._failing = True
            return False
        if self._failing:
            log.info("notifying systemd at %s works again", self.name)
        self._failing = False
        return True

    def close(self) -> None:
        self._sock.close()


class ServiceNotifier:
    """Drives a ``NotifyPlan`` from the event loop; does nothing without NOTIFY_SOCKET."""

    def __init__(self, env: ServiceEnv, clock: Callable[[], float] = time.monotonic) -> None:
        self.env = env
        self.plan = NotifyPlan(env.watchdog_s)
        self._clock = clock
        self._sock = NotifySocket(env.notify_socket) if env.notify_socket else None
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._up: Callable[[], bool] = lambda: False
        self._status = "starting"
        self._stopping = False
        self._follower: asyncio.Task[None] | None = None
        for problem in env.problems:
            log.warning("systemd notify: %s", problem)

    @property
    def active(self) -> bool:
        return self._sock is not None

    def start(self) -> None:
        """Begin the ticks (the watchdog is petted from now, before the agent is ready:
        opening the modules may take a while)."""
        if self._sock is not None and self._handle is None:
            self._handle = asyncio.get_running_loop().call_soon(self._tick)

    def follow(
        self, up: Callable[[], bool], watch: Callable[[], AsyncIterator[pb.StatusEvent]]
    ) -> None:
        """READY=1 once ``up()`` holds; STATUS= from the engine's status stream
        (``watch()``: an async iterator of StatusEvent, ended when the engine is replaced)."""
        self._up = up
        if self._sock is not None and self._follower is None:
            self._follower = asyncio.get_running_loop().create_task(self._follow(watch))
        self._tick_now()

    def stopping(self) -> None:
        self._stopping = True
        self._status = "stopping: the modules are being stopped"
        self._tick_now()

    async def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # ----- the loop side ------------------------------------------------------------
    def _tick_now(self) -> None:
        if self._sock is not None and self._handle is not None:
            self._handle.cancel()
            self._tick()

    def _tick(self) -> None:
        """A loop callback, never a thread: it runs only while the loop does."""
        assert self._sock is not None
        try:
            lines = self.plan.tick(self._clock(), up=self._safe_up(), status=self._status,
                                   stopping=self._stopping)  # fmt: skip
            if self._sock.send(lines):
                self.plan.sent(lines)
        finally:
            self._handle = asyncio.get_running_loop().call_later(
                self.plan.tick_every_s(), self._tick
            )

    def _safe_up(self) -> bool:
        try:
            return self._up()
        except Exception:  # a broken probe must not stop the petting
            log.exception("readiness probe failed")
            return False

    async def _follow(self, watch: Callable[[], AsyncIterator[pb.StatusEvent]]) -> None:
        while True:
            try:
                async for event in watch():
                    if not self._stopping:
                        self._status = status_line(event.status)
            except asyncio.CancelledError:
                raise
            except Exception:  # the status line is a courtesy: never end the agent
                log.exception("following the status for systemd failed")
            await asyncio.sleep(0.5)  # the engine was replaced (first configuration)
