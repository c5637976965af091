"""The metrics endpoint and the health statuses over real engines
(node_agent/metrics/endpoint.py, node_agent/host/observability.py): two engines in one
process, each with its own endpoint and registry, a replicated module on real FUSE mounts
and the real replication stream; scraped over HTTP with urllib."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from grpc_health.v1 import health, health_pb2
from prometheus_client.parser import text_string_to_metric_families

from node_agent.api.health_board import NOT_SERVING, SERVING, module_service
from node_agent.config.model import MetricsConfig
from node_agent.engine.node import NodeEngine
from node_agent.host.observability import Observability
from node_agent.metrics import endpoint
from node_agent.metrics.endpoint import MetricsBindError, MetricsEndpoint
from tests.conftest import require, require_binary
from tests.integration.engine_pair import EnginePair, cluster_config, state_of
from tests.integration.test_engine_replication import replicated_config

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def at(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def scraped_until(port: int, cond: Callable[[Samples], bool], timeout: float = 15.0
                        ) -> Samples:  # fmt: skip
    """Scrape (off the loop: the collector needs it) until ``cond`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        samples = await asyncio.to_thread(scrape, port)
        if cond(samples):
            return samples
        assert time.monotonic() < deadline, f"timed out; last scrape: {samples}"
        await asyncio.sleep(0.1)


def test_two_agents_in_one_process_report_replication(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require(os.path.exists("/dev/fuse"), "needs /dev/fuse (apt-get install fuse3)")
    require_binary("fusermount3")
    config = replicated_config(tmp_path)

    async def scenario() -> None:
        pair = EnginePair(config)
        loop = asyncio.get_running_loop()
        e1, e2 = pair.start("node1"), pair.start("node2")
        ends = {n: MetricsEndpoint("127.0.0.1:0", n, lambda e=e: e, loop)
                for n, e in (("node1", e1), ("node2", e2))}  # fmt: skip
        p1, p2 = ends["node1"].port, ends["node2"].port
        m1, m2 = {"node": "node1", "module": "web"}, {"node": "node2", "module": "web"}
        try:
            await pair.wait_roles("node1", "node2", "PRIM/SECOND", 30)
            # The data plane reaches "replicate" a moment after the automaton's PRIM.
            mode = "mirrorpair_replication_mode"
            before = await scraped_until(p1, lambda s: at(s, mode, **m1, mode="replicate") == 1)
            assert at(before, "mirrorpair_dataplane_up", **m1) == 1
            assert sum(v for (n, _), v in before.items() if n == mode) == 1
            data = os.urandom(2 * 1024 * 1024 + 17)

            def write() -> None:
                with open(tmp_path / "mnt/node1/video.bin", "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())

            await asyncio.to_thread(write)
            after = await asyncio.to_thread(scrape, p1)
            ops = "mirrorpair_replicated_operations_total"
            sent = "mirrorpair_replicated_bytes_total"
            assert at(after, ops, **m1) > at(before, ops, **m1)  # type: ignore[operator]
            assert at(after, sent, **m1) - at(before, sent, **m1) >= len(data)  # type: ignore[operator]
            lat = "mirrorpair_replication_ack_latency_seconds"
            assert at(after, f"{lat}_count", **m1) > at(before, f"{lat}_count", **m1)  # type: ignore[operator]
            assert at(after, f"{lat}_bucket", **m1, le="+Inf") == at(after, f"{lat}_count", **m1)
            assert at(after, "mirrorpair_held_writes", **m1) == 0
            # The other agent's endpoint, in the same process, shows its own engine.
            second = await asyncio.to_thread(scrape, p2)
            assert at(second, "mirrorpair_module_state", **m2, state="SECOND") == 1
            assert at(second, "mirrorpair_module_state", **m1, state="PRIM") is None
            assert at(second, "mirrorpair_dataplane_up", **m2) == 1

            # A data plane that does not answer: its last known counters, in time.
            pid = e1.modules["web"].repl.dp.state.pid  # type: ignore[union-attr]
            await asyncio.to_thread(scrape, p1)  # the client caches the latest state
            os.kill(pid, signal.SIGSTOP)
            try:
                stalled = await asyncio.to_thread(scrape, p1)
            finally:
                os.kill(pid, signal.SIGCONT)
            assert at(stalled, ops, **m1) == at(after, ops, **m1)
            assert at(stalled, "mirrorpair_agent_responsive", node="node1") == 1

            # A blocked event loop: the scrape says so instead of waiting on it.
            monkeypatch.setattr(endpoint, "LOOP_ANSWER_S", 0.2)
            got: list[Samples] = []
            t = threading.Thread(target=lambda: got.append(scrape(p1)))
            t.start()
            t.join(30)  # blocks this loop until the scrape gave up on it
            assert got == [{("mirrorpair_agent_responsive", frozenset({("node", "node1")})): 0}]
            assert state_of(e1) == ("PRIM", "READY")
        finally:
            for ep in ends.values():
                ep.close()
            await pair.close()

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_a_taken_port_names_the_key_and_the_agent_runs_on(tmp_path: Path) -> None:
    async def run() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            with pytest.raises(MetricsBindError, match=rf"metrics.listen = '127.0.0.1:{port}'"):
                MetricsEndpoint(f"127.0.0.1:{port}", "node1", lambda: None,
                                asyncio.get_running_loop())  # fmt: skip
            # The agent says so in its log and runs on without metrics.
            notes: list[tuple[str, str]] = []
            obs = Observability(lambda: None, lambda level, text: notes.append((level, text)))
            config = cluster_config(tmp_path)
            taken = dataclasses.replace(config, metrics=MetricsConfig(f"127.0.0.1:{port}"))
            obs.configure(taken, "node1")
            assert obs.metrics is None
            [(level, text)] = notes
            assert level == "ERROR" and f"metrics.listen = '127.0.0.1:{port}'" in text
            assert "no metrics are served" in text
            free = dataclasses.replace(config, metrics=MetricsConfig("127.0.0.1:0"))
            obs.configure(free, "node1")  # a configuration that moves it: served again
            assert obs.metrics is not None
            assert await asyncio.to_thread(scrape, obs.metrics.port) == {}  # no engine yet
            await obs.close()

    asyncio.run(run())


def test_health_follows_the_engines(tmp_path: Path) -> None:
    """Overall NOT_SERVING until the engine runs and once it stops; a module's SERVING
    only where it is served, moving with a failover (two real engines, real apps)."""
    config = cluster_config(tmp_path)
    web = module_service("web")

    async def check(servicer: health.aio.HealthServicer, service: str) -> int:
        req = health_pb2.HealthCheckRequest(service=service)
        return (await servicer.Check(req, None)).status  # type: ignore[union-attr]

    async def scenario() -> None:
        pair = EnginePair(config)
        engines: dict[str, NodeEngine] = {}
        boards, servicers = {}, {}
        for node in ("node1", "node2"):
            boards[node] = Observability(lambda n=node: engines.get(n), lambda *_: None)
            servicers[node] = health.aio.HealthServicer()
            await boards[node].health.attach(servicers[node], [])
            boards[node].start()

        async def until(node: str, service: str, status: int) -> None:
            await pair.wait(lambda: boards[node].health.wanted.get(service) == status,
                            f"{service or 'overall'} {status} on {node}", 15)  # fmt: skip
            assert await check(servicers[node], service) == status

        try:
            assert await check(servicers["node1"], "") == NOT_SERVING  # no engine yet
            engines["node1"], engines["node2"] = pair.start("node1"), pair.start("node2")
            await pair.wait_roles("node1", "node2", "PRIM/SECOND")
            await until("node1", "", SERVING)
            await until("node2", "", SERVING)
            await until("node1", web, SERVING)
            await until("node2", web, NOT_SERVING)
            await pair.crash("node1")  # gone without a word: node2 takes over
            await until("node2", web, SERVING)
            await pair.stop("node2")  # a clean stop: nothing served any more
            await until("node2", "", NOT_SERVING)
            await until("node2", web, NOT_SERVING)
        finally:
            for b in boards.values():
                await b.close()
            await pair.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
