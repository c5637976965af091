"""A node's replication port: accept, read each connection's route, deliver the socket.

One listener per node (route.py says why). What "deliver" does is the caller's: the agent
hands the socket over to the module's data plane (node_agent/dataplane/router.py); a
process that is itself the secondary (a test rig, a benchmark) gives it to its
StreamReceiver's ``adopt``. Either way the TLS handshake happens after delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable

from node_agent.replication.stream.route import RouteError, read_route

log = logging.getLogger(__name__)
ROUTE_TIMEOUT_S = 5.0

# (module, connection, peer address): takes the connection over (keeps or closes it);
# raises RouteError/OSError to refuse it, and the listener closes it.
Deliver = Callable[[str, socket.socket, tuple], Awaitable[None]]


class RouteListener:
    def __init__(
        self, host: str, port: int, deliver: Deliver, *, route_timeout_s: float = ROUTE_TIMEOUT_S
    ) -> None:
        self._host, self._port, self._deliver = host, port, deliver
        self.route_timeout_s = route_timeout_s
        self._sock: socket.socket | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        return self._sock.getsockname()[1] if self._sock else self._port

    async def start(self) -> int:
        """Listen; returns the bound port (useful with port=0)."""
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        try:
            self._sock = socket.create_server((self._host, self._port), family=family, backlog=128)
        except OSError as e:  # name the address: "in use" alone does not say which
            where = f"{self._host}:{self._port}"
            raise OSError(e.errno, f"replication listener {where}: {e.strerror}") from None
        self._sock.setblocking(False)
        self._spawn(self._accept_loop())
        log.info("replication port listening on %s:%d", self._host, self.port)
        return self.port

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._sock is not None:
            self._sock.close()

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._sock is not None
        while True:
            conn, addr = await loop.sock_accept(self._sock)
            self._spawn(self._route(conn, addr))

    async def _route(self, conn: socket.socket, addr: tuple) -> None:
        where = f"{addr[0]}:{addr[1]}"
        try:
            conn.setblocking(False)
            module = await read_route(conn, self.route_timeout_s)
            await self._deliver(module, conn, addr)
        except (RouteError, OSError) as e:
            log.warning("refused replication connection from %s: %s", where, e)
            with contextlib.suppress(OSError):
                conn.close()
