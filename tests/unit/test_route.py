"""The clear-text route in front of a replication connection (node_agent/replication/route.py)."""

from __future__ import annotations

import asyncio
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node_agent.replication.stream.route import RouteError, read_route, route_preamble


async def _read(data: bytes, close: bool = True, timeout: float = 1.0) -> str:
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        b.sendall(data)
        if close:
            b.shutdown(socket.SHUT_WR)
        name = await read_route(a, timeout)
        rest = a.recv(100) if close else b""
        assert rest == data[len(route_preamble(name)) :], "not one byte beyond the route"
        return name


@given(st.text(min_size=1, max_size=60).filter(lambda t: 0 < len(t.encode()) < 256))
def test_a_route_names_its_module_and_reads_nothing_more(name: str) -> None:
    data = route_preamble(name) + b"\x16\x03\x01 TLS client hello..."
    assert asyncio.run(_read(data)) == name


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x16\x03\x01\x02\x00", "not a MirrorPair replication connection"),
        (b"MPR1\x00", "empty module name"),
        (b"MPR1\x05we", "closed after 2 of 5"),
        (b"MPR1\x02\xff\xfe", "not UTF-8"),
        (b"MPR2\x03web", r"a peer of protocol 2\.x: this agent speaks 1\."),
    ],
)
def test_a_bad_route_says_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(RouteError, match=message):
        asyncio.run(_read(data))


def test_a_silent_connection_times_out() -> None:
    with pytest.raises(RouteError, match="no route within"):
        asyncio.run(_read(b"MPR", close=False, timeout=0.2))


def test_names_that_cannot_be_routed_are_refused() -> None:
    for name in ("", "x" * 256):
        with pytest.raises(ValueError, match="cannot be routed"):
            route_preamble(name)
