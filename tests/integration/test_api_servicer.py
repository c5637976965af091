"""The gRPC server and servicer against a fake EngineApi, over real mTLS on loopback:
request validation, caller naming, watch cancellation, bind errors."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest

from node_agent.api.engine_api import CommandOutcome
from node_agent.api.server import ApiBindError, start_server
from protos import mirrorpair_pb2 as pb
from protos import mirrorpair_pb2_grpc as pb_grpc
from protos.security.ca import create_ca, issue_certificate
from protos.security.credentials import aio_secure_channel, channel_credentials, server_name

SECRET = "fake-engine-secret-0123456789"


class FakeEngine:
    def __init__(self) -> None:
        self.commands: list[tuple[str, int, str, bool]] = []
        self.log_queries: list[tuple[str, int, str, str]] = []
        self.watchers = 0
        self.closed = asyncio.Event()
        self.fail = False
        self.quiet = False  # watch: one snapshot, then nothing (a quiet cluster)

    def status(self) -> pb.NodeStatus:
        if self.fail:
            raise RuntimeError("boom")
        return pb.NodeStatus(node_id="node1", modules=[pb.ModuleStatus(name="web")])

    async def watch(self, log_level: str = "") -> AsyncIterator[pb.StatusEvent]:
        self.watchers += 1
        try:
            seq = 0
            while True:
                seq += 1
                yield pb.StatusEvent(seq=seq, status=self.status())
                await asyncio.sleep(3600 if self.quiet else 0.05)
        finally:
            self.closed.set()

    async def command(self, module: str, command: int, who: str, fullsync: bool = False):
        self.commands.append((module, command, who, fullsync))
        return CommandOutcome(command != pb.COMMAND_PRIM, f"did {command}")

    def logs(self, module: str, limit: int, min_level: str, text: str) -> list[pb.LogEntry]:
        self.log_queries.append((module, limit, min_level, text))
        return [pb.LogEntry(message="hello", module=module)]

    def config_text(self) -> tuple[str, int, str]:
        return f'[cluster]\nname = "x"\nsecret = "{SECRET}"\n', 3, "/etc/mirrorpair/cluster.toml"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    create_ca(d, "fake")
    issue_certificate(d, "node1", d)
    issue_certificate(d, "alice", d, server=False)
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def serving(pki: Path, engine: FakeEngine) -> AsyncIterator[pb_grpc.AgentStub]:
    paths = SimpleNamespace(ca=pki / "ca.pem", cert=pki / "node1.pem", key=pki / "node1.key")
    address = f"127.0.0.1:{free_port()}"
    server = await start_server(engine, address, paths)
    creds = channel_credentials(pki / "ca.pem", pki / "alice.pem", pki / "alice.key")
    channel = aio_secure_channel(address, creds, server_name("node1"))
    try:
        yield pb_grpc.AgentStub(channel)
    finally:
        await channel.close()
        await server.stop(0)


def run(pki: Path, scenario) -> FakeEngine:
    engine = FakeEngine()

    async def main() -> None:
        async with serving(pki, engine) as stub:
            await asyncio.wait_for(scenario(stub, engine), 20)

    asyncio.run(main())
    return engine


async def code_of(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code(), info.value.details()


def test_run_command_validates_and_names_the_caller(pki: Path) -> None:
    async def scenario(stub: pb_grpc.AgentStub, engine: FakeEngine) -> None:
        req = pb.CommandRequest
        code, details = await code_of(stub.RunCommand(req(module="db", command=pb.COMMAND_SWAP)))
        assert code == grpc.StatusCode.NOT_FOUND and "'db'" in details and "web" in details
        code, _ = await code_of(stub.RunCommand(req(module="web")))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        code, _ = await code_of(stub.RunCommand(req(module="web", command=42)))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        code, _ = await code_of(stub.RunCommand(req(command=pb.COMMAND_SWAP)))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        code, details = await code_of(
            stub.RunCommand(req(module="web", command=pb.COMMAND_SWAP, fullsync=True))
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "fullsync" in details
        assert engine.commands == []

        reply = await stub.RunCommand(req(module="web", command=pb.COMMAND_SWAP, issued_by="bob"))
        assert reply.accepted and reply.module.name == "web"
        reply = await stub.RunCommand(req(module="web", command=pb.COMMAND_PRIM))
        assert not reply.accepted and reply.message == f"did {pb.COMMAND_PRIM}"
        await stub.RunCommand(req(module="web", command=pb.COMMAND_SECOND, fullsync=True))
        assert [c[2] for c in engine.commands] == [
            "bob (cert alice)",
            "unknown (cert alice)",
            "unknown (cert alice)",
        ]
        assert engine.commands[2][3] is True

    run(pki, scenario)


def test_get_logs_defaults_and_validation(pki: Path) -> None:
    async def scenario(stub: pb_grpc.AgentStub, engine: FakeEngine) -> None:
        reply = await stub.GetLogs(pb.GetLogsRequest(module="web"))
        assert [e.message for e in reply.entries] == ["hello"]
        await stub.GetLogs(pb.GetLogsRequest(limit=10**6, min_level="warning", text="x"))
        assert engine.log_queries == [("web", 200, "INFO", ""), ("", 10_000, "WARNING", "x")]
        code, _ = await code_of(stub.GetLogs(pb.GetLogsRequest(min_level="LOUD")))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        code, _ = await code_of(stub.GetLogs(pb.GetLogsRequest(module="db")))
        assert code == grpc.StatusCode.NOT_FOUND

    run(pki, scenario)


def test_get_config_masks_the_secret(pki: Path) -> None:
    async def scenario(stub: pb_grpc.AgentStub, engine: FakeEngine) -> None:
        reply = await stub.GetConfig(pb.GetConfigRequest())
        assert SECRET not in reply.toml and 'secret = "***"' in reply.toml
        assert (reply.version, reply.path) == (3, "/etc/mirrorpair/cluster.toml")

    run(pki, scenario)


def test_engine_errors_become_internal(pki: Path) -> None:
    async def scenario(stub: pb_grpc.AgentStub, engine: FakeEngine) -> None:
        engine.fail = True
        code, details = await code_of(stub.GetStatus(pb.GetStatusRequest()))
        assert code == grpc.StatusCode.INTERNAL and "boom" in details
        code, details = await code_of(stub.WatchStatus(pb.WatchRequest()).read())
        assert code == grpc.StatusCode.INTERNAL and "WatchStatus failed" in details

    run(pki, scenario)


def test_watch_ends_cleanly_when_the_client_cancels(pki: Path) -> None:
    async def scenario(stub: pb_grpc.AgentStub, engine: FakeEngine) -> None:
        call = stub.WatchStatus(pb.WatchRequest())
        seqs = []
        async for event in call:
            seqs.append(event.seq)
            if len(seqs) == 3:
                break
        assert seqs == [1, 2, 3]
        call.cancel()
        await asyncio.wait_for(engine.closed.wait(), 5)  # the engine's generator was closed
        code, _ = await code_of(stub.WatchStatus(pb.WatchRequest(log_level="LOUD")).read())
        assert code == grpc.StatusCode.INVALID_ARGUMENT

    run(pki, scenario)


def test_watch_keepalive_resends_the_status_when_quiet(pki: Path) -> None:
    async def scenario(stub: pb_grpc.AgentStub, engine: FakeEngine) -> None:
        engine.quiet = True
        call = stub.WatchStatus(pb.WatchRequest(keepalive_s=0.1))  # clamped to 0.2 s
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        seqs = [(await call.read()).seq for _ in range(4)]
        assert seqs == [1, 2, 3, 4]
        assert 0.5 < loop.time() - t0 < 3.0
        call.cancel()
        await asyncio.wait_for(engine.closed.wait(), 5)
        # Without keepalive_s a quiet engine means a quiet stream.
        engine.closed.clear()
        call = stub.WatchStatus(pb.WatchRequest())
        assert (await call.read()).seq == 1
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(call.read(), 0.6)
        call.cancel()
        await asyncio.wait_for(engine.closed.wait(), 5)

    run(pki, scenario)


def test_bind_failure_names_the_address(pki: Path) -> None:
    paths = SimpleNamespace(ca=pki / "ca.pem", cert=pki / "node1.pem", key=pki / "node1.key")

    async def scenario() -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            address = f"127.0.0.1:{taken.getsockname()[1]}"
            with pytest.raises(ApiBindError, match=f"{address}: Address already in use"):
                await start_server(FakeEngine(), address, paths)
        with pytest.raises(ApiBindError, match="192.0.2.1:7700: .*not an address of this"):
            await start_server(FakeEngine(), "192.0.2.1:7700", paths)

    asyncio.run(scenario())
