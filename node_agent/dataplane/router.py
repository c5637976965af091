"""The node's replication port: each connection goes to its module's data plane.

The agent listens (one port per node, as configured); a connection names its module in
clear first (node_agent/replication/stream/route.py), and the socket is handed over to that
module's data plane, which does the TLS handshake and runs the stream. Streams already
handed over do not pass through the agent: they go on while it restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

from node_agent.dataplane.client import DataPlaneClient
from node_agent.replication.stream.listener import RouteListener
from node_agent.replication.stream.route import RouteError


class ReplicationRouter(RouteListener):
    def __init__(
        self, host: str, port: int, lookup: Callable[[str], DataPlaneClient | None]
    ) -> None:
        super().__init__(host, port, self._hand_off)
        self._lookup = lookup

    async def _hand_off(self, module: str, conn: socket.socket, addr: tuple) -> None:
        client = self._lookup(module)
        if client is None:
            raise RouteError(f"no replicated module {module!r} runs here")
        await asyncio.to_thread(client.hand_off, conn, addr)  # HandoffError is an OSError
        with contextlib.suppress(OSError):
            conn.close()  # the data plane holds its own copy of the socket now
