"""Replication transport benchmark (DESIGN §5 "Data path": measure before choosing).

Same run, same machine, same mutual-TLS certificates, same op encoding (wire.op_payload)
and the same Applier writing a temp directory on the far side, in a separate process:

  (a) gRPC bidirectional streaming: a throwaway proto-less service (generic handlers,
      bytes messages), one stream, one ACK message per op, cumulative completion;
  (b) the framed TLS stream: StreamSender -> StreamReceiver.

Workloads: 4 KiB writes one at a time (ops/s, p50/p99 latency), 4 KiB writes from 32
threads (ops/s), 1 MiB writes one at a time (MB/s).

    .venv/bin/python benchmarks/datapath.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import grpc  # noqa: E402

from node_agent.config.model import NodePaths  # noqa: E402
from node_agent.replication import ops  # noqa: E402
from node_agent.replication.local.apply import Applier  # noqa: E402
from node_agent.replication.stream import wire  # noqa: E402
from node_agent.replication.stream.listener import RouteListener  # noqa: E402
from node_agent.replication.stream.receiver import StreamReceiver  # noqa: E402
from node_agent.replication.stream.sender import StreamSender  # noqa: E402
from protos.security.ca import create_ca, issue_certificate, server_name  # noqa: E402
from protos.security.credentials import channel_credentials, server_credentials  # noqa: E402
from tests.integration.repl_rig import deliver_to  # noqa: E402

SERVICE, METHOD = "mirrorpair.bench.Repl", "Stream"
SEQ = struct.Struct(">Q")
REGION = 64 * 1024 * 1024  # each writer wraps inside its own 64 MiB file region


def paths(pki: Path, node: str) -> NodePaths:
    return NodePaths(pki, pki / "ca" / "ca.pem", pki / "certs" / f"{node}.pem",
                     pki / "certs" / f"{node}.key")  # fmt: skip


# ---- the far side (a separate process) --------------------------------------------------


def refuse_requests(module: str, payload: bytes) -> bytes:
    raise NotImplementedError("the benchmark sends no requests")


def serve(pki: Path, work: Path, port_file: Path) -> None:
    """Host both transports; write "grpc_port stream_port" to port_file."""
    parent = os.getppid()

    def orphaned() -> None:  # never outlive the benchmark that started us
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=orphaned, daemon=True).start()
    (work / "grpc").mkdir(exist_ok=True)
    (work / "stream").mkdir(exist_ok=True)

    def handle(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        with Applier(work / "grpc") as applier:
            for msg in requests:
                view = memoryview(msg)
                applier.apply(wire.decode_op(view[8:]))
                yield bytes(view[:8])  # ack = the op's seq

    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(
            SERVICE, {METHOD: grpc.stream_stream_rpc_method_handler(handle)}
        ),)
    )  # fmt: skip
    grpc_port = server.add_secure_port("127.0.0.1:0", server_credentials(paths(pki, "node2")))
    server.start()

    async def main() -> None:
        rx = StreamReceiver(
            node_id="node2", peer="node1", tls=paths(pki, "node2"),
            resolve=lambda m: Applier(work / "stream"), handle_request=refuse_requests,
        )  # fmt: skip
        port = await RouteListener("127.0.0.1", 0, deliver_to(rx)).start()
        port_file.write_text(f"{grpc_port} {port}\n")
        await asyncio.Event().wait()

    asyncio.run(main())


# ---- the primary side -------------------------------------------------------------------


class GrpcReplicator:
    """One op at a time over one gRPC bidi stream: seq under a lock, block until the
    (cumulative) ack covers it. Deliberately the same shape as StreamSender's enqueue and
    wait."""

    def __init__(self, pki: Path, port: int) -> None:
        p = paths(pki, "node1")
        self.channel = grpc.secure_channel(
            f"127.0.0.1:{port}", channel_credentials(p.ca, p.cert, p.key),
            options=[("grpc.ssl_target_name_override", server_name("node2")),
                     ("grpc.max_send_message_length", 4 << 20)],
        )  # fmt: skip
        call = self.channel.stream_stream(f"/{SERVICE}/{METHOD}")
        self.outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.seq = 0
        self.waiters: dict[int, threading.Lock] = {}
        self.responses = call(iter(self.outbox.get, None))
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def replicate(self, op: ops.Op) -> None:
        payload = wire.op_payload(op)
        done = threading.Lock()
        done.acquire()
        with self.lock:  # queue order = seq order
            self.seq += 1
            self.waiters[self.seq] = done
            self.outbox.put(SEQ.pack(self.seq) + payload)
        done.acquire()

    def _read(self) -> None:
        for msg in self.responses:
            (acked,) = SEQ.unpack(msg)
            with self.lock:
                done = self.waiters.pop(acked)
            done.release()

    def close(self) -> None:
        self.outbox.put(None)
        self.reader.join(10)
        self.channel.close()


def stream_replicator(pki: Path, port: int) -> StreamSender:
    def on_failure(reason: str, unacked: list[ops.Op]) -> None:
        raise SystemExit(f"stream failed during the benchmark: {reason}")

    sender = StreamSender(
        module="bench", node_id="node1", peer="node2", host="127.0.0.1", port=port,
        tls=paths(pki, "node1"), generation="bench", on_failure=on_failure,
        fallback=lambda op: None, ack_timeout_s=30,
    )  # fmt: skip
    sender.connect()
    return sender


def one_by_one(sender: StreamSender) -> Callable[[ops.Op], None]:
    """Each op enqueued, then waited for: the path of a synchronous write."""
    return lambda op: sender.enqueue(op)()


def sequential(rep: Callable[[ops.Op], None], name: str, n: int, size: int) -> list[float]:
    rep(ops.Create(name, 0o100644))
    data, lat = bytes(size), []
    for i in range(n):
        t = time.perf_counter()
        rep(ops.Write(name, (i * size) % REGION, data))
        lat.append(time.perf_counter() - t)
    return lat


def parallel(rep: Callable[[ops.Op], None], name: str, threads: int, n: int) -> float:
    for t in range(threads):
        rep(ops.Create(f"{name}{t}", 0o100644))
    data = bytes(4096)

    def work(t: int) -> None:
        for i in range(n // threads):
            rep(ops.Write(f"{name}{t}", (i * 4096) % REGION, data))

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
    return n / (time.perf_counter() - start)


def measure(rep: Callable[[ops.Op], None], args: argparse.Namespace) -> dict[str, float]:
    sequential(rep, "warm", 300, 4096)
    lat = sequential(rep, "seq4k", args.ops, 4096)
    par = parallel(rep, "par", 32, args.ops * 4)
    big = sequential(rep, "seq1m", args.mib, 1 << 20)
    q = statistics.quantiles(lat, n=100)
    return {
        "4 KiB sync, 1 thread   ops/s": len(lat) / sum(lat),
        "                  p50 latency µs": q[49] * 1e6,
        "                  p99 latency µs": q[98] * 1e6,
        "4 KiB, 32 threads      ops/s": par,
        "1 MiB sync, 1 thread   MB/s": len(big) * 1.048576 / sum(big),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer ops (a smoke run)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; best kept")
    args = parser.parse_args()
    args.ops, args.mib = (500, 50) if args.quick else (4000, 400)
    with tempfile.TemporaryDirectory(prefix="mp-bench-") as tmp:
        pki, work, port_file = Path(tmp) / "pki", Path(tmp) / "work", Path(tmp) / "ports"
        work.mkdir()
        create_ca(pki / "ca", "bench")
        for node in ("node1", "node2"):
            issue_certificate(pki / "ca", node, pki / "certs")
        far = subprocess.Popen(
            [sys.executable, __file__, "serve", str(pki), str(work), str(port_file)]
        )
        try:
            while not port_file.exists() or not port_file.read_text().endswith("\n"):
                if far.poll() is not None:
                    raise SystemExit("the far side did not start")
                time.sleep(0.05)
            grpc_port, stream_port = map(int, port_file.read_text().split())
            results: dict[str, list[dict[str, float]]] = {"gRPC": [], "stream": []}
            for _ in range(args.rounds):  # alternate, so drift hits both alike
                g = GrpcReplicator(pki, grpc_port)
                results["gRPC"].append(measure(g.replicate, args))
                g.close()
                s = stream_replicator(pki, stream_port)
                results["stream"].append(measure(one_by_one(s), args))
                s.close()
        finally:
            far.kill()
            far.wait()
    report(results)


def report(results: dict[str, list[dict[str, float]]]) -> None:
    def best(runs: list[dict[str, float]], key: str) -> float:
        values = [r[key] for r in runs]
        return min(values) if "latency" in key else max(values)

    print(f"\n{'':34}{'gRPC stream':>14}{'framed TLS':>14}{'ratio':>9}")
    for key in results["gRPC"][0]:
        g, s = best(results["gRPC"], key), best(results["stream"], key)
        ratio = g / s if "latency" in key else s / g  # > 1: the framed stream is better
        print(f"{key:34}{g:14.0f}{s:14.0f}{ratio:8.2f}x")
    print("(best of the rounds; ratio > 1 means the framed TLS stream is better)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        main()
