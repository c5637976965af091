"""The route of a replication connection: which module's data plane it is for.

Each module's secondary side runs in a data plane process of its own (DESIGN §5, issue
13), but a node listens on one replication port. So the primary sends, in clear before
the TLS handshake, a few bytes naming the module; the node's router reads exactly those
bytes (never a byte of the TLS handshake behind them) and hands the socket over to that
module's data plane, which does the handshake and checks the certificate itself. The
module name is no secret: it is in the configuration of both nodes.

Format: b"MPR1", one byte of length, the module name in UTF-8 (1..255 bytes). The digit
is the major protocol (node_agent/protocol.py): a route of another major comes from a
peer this agent cannot work with, and is refused saying so.
"""

from __future__ import annotations

import asyncio
import socket

from node_agent.protocol import PROTOCOL

PREFIX = b"MPR"
MAGIC = PREFIX + str(PROTOCOL.major).encode()


class RouteError(ValueError):
    """The connection did not start with a valid route."""


def route_preamble(module: str) -> bytes:
    name = module.encode()
    if not 0 < len(name) < 256:
        raise ValueError(f"module name {module!r} cannot be routed (1 to 255 bytes)")
    return MAGIC + bytes([len(name)]) + name


async def _exactly(sock: socket.socket, n: int) -> bytes:
    loop = asyncio.get_running_loop()
    out = b""
    while len(out) < n:
        chunk = await loop.sock_recv(sock, n - len(out))
        if not chunk:
            raise RouteError(f"connection closed after {len(out)} of {n} route bytes")
        out += chunk
    return out


async def read_route(sock: socket.socket, timeout_s: float) -> str:
    """The module named by the connection's preamble (``sock`` non-blocking)."""

    async def read() -> str:
        head = await _exactly(sock, len(MAGIC) + 1)
        if head[: len(PREFIX)] == PREFIX and head[: len(MAGIC)] != MAGIC:
            other = head[len(PREFIX) : len(MAGIC)].decode(errors="replace")
            raise RouteError(f"a peer of protocol {other}.x: this agent speaks {PROTOCOL} (a "
                             "major version is no rolling upgrade: docs/upgrade.md)")  # fmt: skip
        if head[: len(MAGIC)] != MAGIC:
            raise RouteError(f"not a MirrorPair replication connection (starts {head!r})")
        if head[-1] == 0:
            raise RouteError("empty module name in the route")
        name = await _exactly(sock, head[-1])
        try:
            return name.decode()
        except UnicodeDecodeError:
            raise RouteError(f"module name is not UTF-8: {name!r}") from None

    try:
        return await asyncio.wait_for(read(), timeout_s)
    except TimeoutError:
        raise RouteError(f"no route within {timeout_s:g} s") from None
