"""StreamSender -> StreamReceiver -> Applier over real mutual-TLS sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from node_agent.config.model import NodePaths
from node_agent.replication import ops
from node_agent.replication.local.apply import Applier
from node_agent.replication.stream import link_tls, wire
from node_agent.replication.stream.frame_decoder import FrameDecoder
from node_agent.replication.stream.listener import RouteListener
from node_agent.replication.stream.receiver import StreamReceiver
from node_agent.replication.stream.route import route_preamble
from node_agent.replication.stream.sender import (
    LinkError,
    NotAcknowledged,
    SenderState,
    StreamSender,
)
from node_agent.replication.stream.wire import FrameType, Hello, Mode, encode_frame
from protos.security.ca import create_ca, issue_certificate
from tests.integration.repl_rig import deliver_to


@dataclass(frozen=True)
class Pki:
    dir: Path

    def paths(self, name: str, ca: str = "ca") -> NodePaths:
        d, c = self.dir, self.dir / f"certs-{ca}"
        return NodePaths(d, d / ca / "ca.pem", c / f"{name}.pem", c / f"{name}.key")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other"):
        create_ca(d / ca, f"cluster-{ca}")
        for node in ("node1", "node2"):
            issue_certificate(d / ca, node, d / f"certs-{ca}")
    issue_certificate(d / "ca", "console", d / "certs-ca", server=False)
    return Pki(d)


@dataclass
class Secondary:  # node2's receiver, in a thread with its own event loop
    root: Path
    pki: Pki
    delay_s: float = 0.0  # per op applied; a test may change it before connecting
    on_request: Callable[[str, bytes], bytes] = lambda module, body: b""
    applied: list[ops.Op] = field(default_factory=list)

    def __enter__(self) -> Secondary:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.rx = StreamReceiver(
            node_id="node2", peer="node1", tls=self.pki.paths("node2"), resolve=self.resolve,
            hello_timeout_s=2, handle_request=self._request,
        )  # fmt: skip
        self.listener = RouteListener("127.0.0.1", 0, deliver_to(self.rx), route_timeout_s=2)
        self.port = self.call(self.listener.start())
        return self

    def resolve(self, module: str) -> Applier | None:
        if module != "mod":
            return None
        applier, apply = Applier(self.root), Applier.apply

        def apply_and_log(op: ops.Op) -> None:  # the real Applier, recording what it did
            time.sleep(self.delay_s)
            apply(applier, op)
            self.applied.append(op)

        applier.apply = apply_and_log  # type: ignore[method-assign]
        return applier

    def _request(self, module: str, body: bytes) -> bytes:
        return self.on_request(module, body)

    def call(self, coro):  # noqa: ANN001, ANN201
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def __exit__(self, *exc: object) -> None:
        self.call(self.listener.close())
        self.call(self.rx.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


@dataclass
class Primary:
    sender: StreamSender = None  # type: ignore[assignment]
    failures: list[tuple[str, list[ops.Op]]] = field(default_factory=list)
    fallback: list[ops.Op] = field(default_factory=list)
    tracked: set[ops.Op] = field(default_factory=set)


def primary(pki: Pki, port: int, on_failure_delay: float = 0.0, **kw: Any) -> Primary:
    p = Primary()

    def on_failure(reason: str, unacked: list[ops.Op]) -> None:
        time.sleep(on_failure_delay)  # waiters must still be blocked meanwhile
        p.tracked.update(unacked)
        p.failures.append((reason, unacked))

    args = {"module": "mod", "node_id": "node1", "peer": "node2", "host": "127.0.0.1",
            "port": port, "tls": pki.paths("node1"), "generation": "g-node1"}  # fmt: skip
    p.sender = StreamSender(**(args | kw), on_failure=on_failure, fallback=p.fallback.append)
    return p


@pytest.fixture
def secondary(tmp_path: Path, pki: Pki) -> Iterator[Secondary]:
    (tmp_path / "copy").mkdir()
    with Secondary(tmp_path / "copy", pki) as s:
        yield s


def block(tag: int, i: int, size: int = 4096) -> bytes:
    return struct.pack(">II", tag, i) * (size // 8)


def test_concurrent_writes_are_applied_in_order_before_replicate_returns(
    secondary: Secondary, pki: Pki
) -> None:
    p = primary(pki, secondary.port)
    p.sender.connect()
    threads, per_thread = 16, 60
    submitted: dict[int, list[ops.Op]] = {t: [] for t in range(threads)}

    def writer(t: int) -> None:
        def rep(op: ops.Op) -> None:
            p.sender.enqueue(op)()
            submitted[t].append(op)

        rep(ops.Mkdir(f"d{t}", 0o40755))
        rep(ops.Create(f"f{t}", 0o100640))
        for i in range(per_thread):
            rep(ops.Write(f"f{t}", i * 4096, block(t, i)))
            assert applied(secondary.root, submitted[t][-1])  # already there on return
        rep(ops.Rename(f"f{t}", f"d{t}/f{t}"))
        assert (secondary.root / f"d{t}/f{t}").stat().st_size == per_thread * 4096

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(writer, range(threads)))  # re-raises a writer's failure
    stats = p.sender.stats()
    p.sender.close()
    total = sum(map(len, submitted.values()))
    assert stats.state is SenderState.RUNNING and not p.failures and not p.fallback
    assert stats.ops_sent == stats.acked_seq == stats.applied_seq == total == len(secondary.applied)
    for t, ops_of_t in submitted.items():  # exactly once, each writer's ops in its order
        assert [op for op in secondary.applied if op in ops_of_t] == ops_of_t, t


def test_second_mode_acks_on_receipt_but_fsync_waits_for_apply(
    secondary: Secondary, pki: Pki
) -> None:
    secondary.delay_s = 0.1
    p = primary(pki, secondary.port, mode=Mode.SECOND)
    p.sender.connect()
    start = time.monotonic()
    p.sender.enqueue(ops.Create("f", 0o100644))()
    for i in range(5):
        p.sender.enqueue(ops.Write("f", i, b"x"))()
    assert time.monotonic() - start < 0.3 and len(secondary.applied) < 6  # received only
    p.sender.enqueue(ops.Fsync("f"))()
    assert len(secondary.applied) == 7  # the fsync itself, and all before it
    p.sender.close()
    assert not p.failures


def test_lazy_ops_leave_with_the_next_op_sent(secondary: Secondary, pki: Pki) -> None:
    """A writeback and its timestamps wait in the outbox for the FSYNC that settles them:
    one piece on the wire. (lazy_max_s: the watch must not send them meanwhile.)"""
    p = primary(pki, secondary.port, lazy_max_s=30)
    p.sender.connect()
    p.sender.enqueue(ops.Create("f", 0o100644))()
    sent = p.sender.stats().ops_sent
    w1 = p.sender.enqueue(ops.Write("f", 0, b"a" * 4096), inline=False, lazy=True)
    w2 = p.sender.enqueue(ops.Utimens("f", 1, 2), inline=False, lazy=True)
    # nobody sends them, nobody was woken (an absence: given 0.3 s to show itself)
    assert not wait_for(lambda: p.sender.stats().ops_sent > sent, 0.3)
    p.sender.enqueue(ops.Fsync("f"))()
    assert p.sender.stats().ops_sent == sent + 3
    w1()
    w2()  # covered by the FSYNC's ACK already
    assert (secondary.root / "f").read_bytes() == b"a" * 4096
    p.sender.close()
    assert not p.failures and not p.fallback


def test_a_lazy_op_is_sent_by_its_wait_by_the_watch_or_at_once_when_big(
    secondary: Secondary, pki: Pki
) -> None:
    p = primary(pki, secondary.port, lazy_max_s=30)
    p.sender.connect()
    p.sender.enqueue(ops.Create("f", 0o100644))()
    w = p.sender.enqueue(ops.Write("f", 0, b"b" * 10), inline=False, lazy=True)
    w()  # its own wait sends it: it returns, applied
    assert (secondary.root / "f").read_bytes() == b"b" * 10
    big = ops.Write("f", 0, b"c" * (256 * 1024))  # a stream of writebacks: sent at once
    p.sender.enqueue(big, inline=False, lazy=True)
    assert wait_for(lambda: applied(secondary.root, big), 10)
    left = ops.Write("f", 1, b"d")  # no wait comes: close() sends it, nothing fails
    p.sender.enqueue(left, inline=False, lazy=True)
    p.sender.close()
    assert applied(secondary.root, left) and not p.failures and not p.fallback

    q = primary(pki, secondary.port, lazy_max_s=0.05)
    q.sender.connect()
    last = ops.Write("f", 2, b"e")
    q.sender.enqueue(last, inline=False, lazy=True)  # no wait, no close: the watch sends it
    assert wait_for(lambda: applied(secondary.root, last), 10)
    q.sender.close()
    assert not q.failures


def test_client_certificate_from_another_ca_is_refused(
    secondary: Secondary, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = ssl.create_default_context(cafile=str(pki.paths("node1").ca))  # trusts our CA...
    intruder = pki.paths("node1", ca="other")  # ...but shows a foreign certificate
    ctx.load_cert_chain(str(intruder.cert), str(intruder.key))
    p = primary(pki, secondary.port, tls=ctx, connect_timeout_s=3)
    with caplog.at_level(logging.WARNING), pytest.raises(LinkError, match="certificate"):
        p.sender.connect()
    assert "TLS handshake failed" in caplog.text
    assert not any(secondary.root.iterdir()) and not secondary.applied


@pytest.mark.parametrize(
    ("cert", "node_id", "module", "reason"),
    [
        ("node2", "node2", "mod", "certificate CN 'node2' is not the peer node 'node1'"),
        ("console", "node1", "mod", "certificate CN 'console' is not the peer node 'node1'"),
        ("node1", "node2", "mod", "node id 'node2' does not match certificate CN 'node1'"),
        ("node1", "node1", "nope", "refused module nope: unknown module nope"),
    ],
)
def test_wrong_identity_or_module_is_refused(
    secondary: Secondary, pki: Pki, caplog: pytest.LogCaptureFixture, cert: str, node_id: str,
    module: str, reason: str,
) -> None:  # fmt: skip
    ctx = link_tls.client_context(pki.paths(cert))
    p = primary(pki, secondary.port, tls=ctx, node_id=node_id, module=module)
    with caplog.at_level(logging.WARNING), pytest.raises(LinkError, match=reason) as info:
        p.sender.connect()
    assert info.value.refused and reason.split(": ")[-1] in caplog.text
    assert p.sender.state is SenderState.FAILED
    with pytest.raises(NotAcknowledged):  # never connected: tracked, and said so
        p.sender.enqueue(ops.Create("x", 0o100644))()
    assert p.fallback and not any(secondary.root.iterdir()) and not secondary.applied


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlinked parent"])
def test_path_escape_is_refused_and_the_sender_degrades(
    secondary: Secondary, pki: Pki, tmp_path: Path, kind: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (secondary.root / "link").symlink_to(outside)  # planted in the copy
    bad = {
        "dotdot": ops.Create("../outside/x", 0o100644),
        "absolute": ops.Create(str(outside / "x"), 0o100644),  # not /etc: we run as root
        "symlinked parent": ops.Create("link/x", 0o100644),
    }[kind]
    p = primary(pki, secondary.port)
    p.sender.connect()
    p.sender.enqueue(ops.Create("ok", 0o100644))()
    with pytest.raises(NotAcknowledged, match="unsafe path"):  # tracked, not lost
        p.sender.enqueue(bad)()
    assert p.sender.state is SenderState.FAILED
    assert len(p.failures) == 1 and p.failures[0][1] == [bad]
    assert "could not apply op 2" in p.failures[0][0] and "unsafe path" in p.failures[0][0]
    assert not any(outside.iterdir()) and secondary.applied == [ops.Create("ok", 0o100644)]
    after = ops.Create("after", 0o100644)
    with pytest.raises(NotAcknowledged):
        p.sender.enqueue(after)()
    assert p.fallback == [after] and not (secondary.root / "after").exists()
    p.sender.close()


class RawPeer:
    """A hand-driven primary: valid TLS identity, arbitrary bytes."""

    def __init__(self, pki: Pki, port: int) -> None:
        ctx = link_tls.client_context(pki.paths("node1"))
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(route_preamble("mod"))  # what every primary sends first
        self.sock = ctx.wrap_socket(sock, server_hostname="mirrorpair-node2")
        self.decoder = FrameDecoder()
        self.sock.sendall(encode_frame(FrameType.HELLO, 0, Hello("mod", "node1", "g")))
        assert self.next().body == wire.HelloAck(True)

    def next(self) -> wire.Frame | None:
        frames: list[wire.Frame] = []
        while not frames:
            data = self.sock.recv(65536)
            if not data:
                return None
            frames = self.decoder.feed(data)
        assert len(frames) == 1, frames
        return frames[0]


@pytest.mark.parametrize(
    ("garbage", "reason"),
    [
        (b"\x00GARBAGE-GARBAGE-GARBAGE", "bad magic"),
        (wire.frame_header(FrameType.OP, 2, 5) + wire.op_payload(ops.Create("x", 0))[:5],
         "truncated mode in Create"),
        (encode_frame(FrameType.OP, 9, ops.Create("x", 0o100644)), "op seq 9 after 1"),
        (encode_frame(FrameType.HELLO, 0, Hello("mod", "node1", "g")), "unexpected HELLO"),
    ],
)  # fmt: skip
def test_garbage_frame_is_refused(secondary: Secondary, pki: Pki, garbage: bytes,
                                  reason: str) -> None:  # fmt: skip
    peer = RawPeer(pki, secondary.port)
    peer.sock.sendall(encode_frame(FrameType.OP, 1, ops.Create("a", 0o100644)))
    assert peer.next() == wire.Frame(FrameType.ACK, 1, 1)
    peer.sock.sendall(garbage + encode_frame(FrameType.OP, 2, ops.Create("b", 0o100644)))
    error = peer.next()
    assert error is not None and error.type is FrameType.ERROR
    assert reason in error.body.message  # type: ignore[union-attr]
    assert peer.next() is None  # closed
    assert sorted(os.listdir(secondary.root)) == ["a"]


def test_requests_are_answered_in_order(secondary: Secondary, pki: Pki) -> None:
    secondary.on_request = lambda module, body: module.encode() + body
    peer = RawPeer(pki, secondary.port)
    peer.sock.sendall(encode_frame(FrameType.PING, 5) + encode_frame(FrameType.REQUEST, 7, b"!"))
    assert peer.next() == wire.Frame(FrameType.PONG, 5)
    assert peer.next() == wire.Frame(FrameType.REPLY, 7, b"mod!")


def test_a_reconnecting_primary_displaces_its_old_stream(secondary: Secondary, pki: Pki) -> None:
    old, new = primary(pki, secondary.port), primary(pki, secondary.port)
    old.sender.connect()
    old.sender.enqueue(ops.Create("a", 0o100644))()
    new.sender.connect()
    new.sender.enqueue(ops.Create("b", 0o100644))()
    assert wait_for(lambda: old.sender.state is SenderState.FAILED, 5)
    # The failure callback runs just after the state changes (another thread).
    assert wait_for(lambda: bool(old.failures), 5)
    assert [unacked for _, unacked in old.failures] == [[]]
    assert sorted(os.listdir(secondary.root)) == ["a", "b"]
    new.sender.close()


@pytest.fixture
def receiver_process(tmp_path: Path, pki: Pki) -> Iterator[tuple[subprocess.Popen, Path, int]]:
    root, port_file = tmp_path / "copy", tmp_path / "port"
    root.mkdir()
    args = [sys.executable, "-m", "tests.integration.test_datapath", pki.dir, root, port_file]
    proc = subprocess.Popen(args, cwd=Path(__file__).resolve().parents[2])  # the repo
    started = wait_for(lambda: port_file.exists() and port_file.read_text().endswith("\n"), 20)
    assert started and proc.poll() is None, "the receiver process did not start"
    yield proc, root, int(port_file.read_text())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP])
def test_losing_the_receiver_midstream_degrades_within_ack_timeout(
    receiver_process: tuple[subprocess.Popen, Path, int], pki: Pki, sig: signal.Signals
) -> None:
    proc, root, port = receiver_process
    p = primary(pki, port, ack_timeout_s=1.5, on_failure_delay=0.3)
    p.sender.connect()
    stop, submitted, returned_after = threading.Event(), [], []

    def writer(t: int) -> None:
        p.sender.enqueue(ops.Create(f"f{t}", 0o100644))()
        i = 0
        while not stop.is_set():
            op = ops.Write(f"f{t}", i * 4096, block(t, i))
            submitted.append(op)
            try:
                p.sender.enqueue(op)()
            except NotAcknowledged:
                # on_failure must have tracked it before this waiter was released
                assert op in p.tracked or op in p.fallback or applied(root, op)
                returned_after.append(time.monotonic())
            i += 1

    with ThreadPoolExecutor(8) as pool:
        workers = [pool.submit(writer, t) for t in range(8)]
        try:
            time.sleep(0.5)
            killed = time.monotonic()
            os.kill(proc.pid, sig)
            failed = wait_for(lambda: bool(p.failures), 1.5 + 1.0)
            # The writers go on after the break: what they write now goes to the fallback.
            carried_on = failed and wait_for(lambda: bool(p.fallback), 5)
        finally:
            stop.set()  # else the pool would wait for the writers forever
    assert failed, "the sender did not give up within the ACK timeout"
    assert carried_on, "no write after the break reached the fallback"
    for w in workers:
        w.result()  # re-raises a writer's failure
    assert len(p.failures) == 1
    reason, unacked = p.failures[0]
    expect = ("no acknowledgement",) if sig == signal.SIGSTOP else ("closed", "lost")
    assert any(word in reason for word in expect), reason
    assert unacked and p.fallback and p.sender.state is SenderState.FAILED
    assert min(returned_after) - killed < 1.5 + 1.0
    for op in submitted:  # nothing lost: applied there, or tracked here
        assert op in p.tracked or op in p.fallback or applied(root, op), op
    p.sender.close()


def test_an_idle_dead_peer_is_noticed_by_ping(
    receiver_process: tuple[subprocess.Popen, Path, int], pki: Pki
) -> None:
    proc, _, port = receiver_process
    p = primary(pki, port, ack_timeout_s=1.0, ping_interval_s=0.2)
    p.sender.connect()
    time.sleep(0.6)  # a few PING/PONG rounds
    assert p.sender.state is SenderState.RUNNING
    os.kill(proc.pid, signal.SIGSTOP)
    time.sleep(2.0)
    assert p.sender.state is SenderState.FAILED and p.failures
    assert "no PONG" in p.failures[0][0] and p.failures[0][1] == []
    p.sender.close()


def wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def applied(root: Path, op: ops.Write) -> bool:
    with contextlib.suppress(FileNotFoundError), open(root / op.path, "rb") as f:
        return os.pread(f.fileno(), len(op.data), op.offset) == op.data
    return False


def main() -> None:
    """A receiver in its own process, so that a test can kill it: PKI_DIR ROOT PORT_FILE."""
    pki_dir, root, port_file = map(Path, sys.argv[1:4])
    with Secondary(root, Pki(pki_dir)) as sec:
        port_file.write_text(f"{sec.port}\n")
        threading.Event().wait()


if __name__ == "__main__":
    main()
