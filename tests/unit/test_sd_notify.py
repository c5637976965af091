"""The notify socket driver (node_agent.host.sd_notify) against real unix sockets."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from node_agent.host.sd_notify import NotifySocket, socket_address, take_service_env
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
