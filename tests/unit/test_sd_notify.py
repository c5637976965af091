"""The notify socket driver (node_agent.host.sd_notify) against real unix sockets."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from node_agent.host.sd_notify import (
    NotifySocket,
    ServiceNotifier,
    socket_address,
    take_service_env,
)
from node_agent.host.service_plan import ServiceEnv
from protos import mirrorpair_pb2 as pb
from tests.notify_listener import NotifyListener


def test_abstract_names_get_a_nul_byte():
    assert socket_address("@sd/notify") == b"\0sd/notify"
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"


def test_sends_one_datagram_of_lines_to_a_path_socket(tmp_path: Path):
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        sock = NotifySocket(str(path))
        assert sock.send(["READY=1", "STATUS=node1: web PRIM"])
        assert server.recv(4096) == b"READY=1\nSTATUS=node1: web PRIM"
        sock.close()


def test_abstract_socket_and_sender_pid():
    with NotifyListener() as listener:
        sock = NotifySocket(listener.name)
        assert sock.send(["WATCHDOG=1"])
        (notice,) = listener.read_all()
        assert notice.lines == ("WATCHDOG=1",) and notice.pid == os.getpid()
        sock.close()


def test_a_missing_socket_is_reported_not_raised(tmp_path: Path, caplog):
    sock = NotifySocket(str(tmp_path / "gone"))
    assert not sock.send(["WATCHDOG=1"]) and not sock.send(["WATCHDOG=1"])
    assert len([r for r in caplog.records if "cannot notify systemd" in r.message]) == 1
    sock.close()


def test_children_do_not_inherit_the_variables():
    environ = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid()),
               "PATH": "/bin"}  # fmt: skip
    env = take_service_env(environ)
    assert env.notify_socket == "@x" and env.watchdog_s == 4.0
    assert environ == {"PATH": "/bin"}


async def _no_events() -> AsyncIterator[pb.StatusEvent]:
    await asyncio.Event().wait()
    yield pb.StatusEvent()  # never reached


def test_a_ready_that_could_not_be_sent_is_sent_on_a_later_tick(tmp_path: Path):
    """systemd's socket refuses the first READY=1 (not there yet, as during a
    daemon-reexec): a later tick sends it, and only once."""
    path = tmp_path / "notify"

    async def scenario() -> list[bytes]:
        notifier = ServiceNotifier(ServiceEnv(notify_socket=str(path)))
        notifier.start()
        notifier.follow(lambda: True, _no_events)  # up at once: READY=1 decided, send fails
        assert not notifier.plan.ready_sent
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
            server.bind(str(path))
            server.setblocking(False)
            got: list[bytes] = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while not any(b"READY=1" in d for d in got) and loop.time() < deadline:
                await asyncio.sleep(0.05)
                while True:
                    try:
                        got.append(server.recv(4096))
                    except BlockingIOError:
                        break
            for _ in range(3):  # more ticks: no second READY=1
                await asyncio.sleep(notifier.plan.tick_every_s())
            while True:
                try:
                    got.append(server.recv(4096))
                except BlockingIOError:
                    break
        await notifier.close()
        return got

    got = asyncio.run(scenario())
    assert sum(d.split(b"\n").count(b"READY=1") for d in got) == 1, got
