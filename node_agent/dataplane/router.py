"""The node's replication port: each connection goes to its module's data plane.

The agent listens (one port per node, as configured); a connection names its module in
clear first (node_agent/replication/stream/route.py), and the socket is handed over to that
module's data plane, which does the TLS handshake and runs the stream. Streams already
handed over do not pass through the agent: they go on while it restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable

from node_agent.dataplane.client import DataPlaneClient
from node_agent.dataplane.handoff import HandoffError
from node_agent.replication.stream.route import RouteError, read_route

log = logging.getLogger(__name__)
ROUTE_TIMEOUT_S = 5.0


class ReplicationRouter:
    def __init__(
        self, host: str, port: int, lookup: Callable[[str], DataPlaneClient | None]
    ) -> None:
        self._host, self._port, self._lookup = host, port, lookup
        self._sock: socket.socket | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        return self._sock.getsockname()[1] if self._sock else self._port

    async def start(self) -> int:
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

    def _spawn(self, coro) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.get_running_loop().create_task(coro)
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
            module = await read_route(conn, ROUTE_TIMEOUT_S)
            client = self._lookup(module)
            if client is None:
                raise RouteError(f"no replicated module {module!r} runs here")
            await asyncio.to_thread(client.hand_off, conn, addr)
        except (RouteError, HandoffError, OSError) as e:
            log.warning("refused replication connection from %s: %s", where, e)
        finally:
            with contextlib.suppress(OSError):
                conn.close()  # the data plane holds its own copy of the socket
