"""The agent as a systemd service: notify protocol and child subreaper (issue 14).

    service = AgentService.from_environ(os.environ)   # before anything is started
    service.begin()                                   # watchdog pets, orphan reaping
    await host.start(); service.follow(host)          # READY=1, STATUS=
    service.stopping()                                # on SIGTERM: STOPPING=1
    await service.close()

Outside systemd (no NOTIFY_SOCKET) only the subreaper part does anything.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import TYPE_CHECKING

from node_agent.host.reaper import ChildReaper, become_subreaper
from node_agent.host.sd_notify import ServiceNotifier, take_service_env
from node_agent.host.service_plan import ServiceEnv

if TYPE_CHECKING:
    from node_agent.host.agent_host import AgentHost

log = logging.getLogger(__name__)


class AgentService:
    def __init__(self, env: ServiceEnv, *, subreaper: bool = True) -> None:
        self.notifier = ServiceNotifier(env)
        self.subreaper = subreaper
        self.reaper: ChildReaper | None = None

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str]) -> AgentService:
        """Takes systemd's variables out of ``environ`` (children must not inherit them)."""
        return cls(take_service_env(environ))

    def begin(self) -> None:
        """From inside the running loop, before the host starts."""
        if self.notifier.active:
            log.info("under systemd: notifying %s, watchdog %s", self.notifier.env.notify_socket,
                     f"{self.notifier.env.watchdog_s:g} s" if self.notifier.env.watchdog_s
                     else "off")  # fmt: skip
        self.notifier.start()
        if self.subreaper and become_subreaper():
            self.reaper = ChildReaper()
            self.reaper.start()

    def follow(self, host: AgentHost) -> None:
        def watch():  # type: ignore[no-untyped-def]
            assert host.slot is not None
            return host.slot.watch()

        self.notifier.follow(lambda: host.up, watch)

    def stopping(self) -> None:
        self.notifier.stopping()

    async def close(self) -> None:
        if self.reaper is not None:
            self.reaper.stop()
        await self.notifier.close()
