"""A module's data plane process: ``python -m node_agent.dataplane RUN_DIR``.

Started by the agent (node_agent/dataplane/supervisor.py) in a session of its own, so
that it outlives the agent: a crash, a restart or an upgrade of the agent leaves the
module's FUSE mounts served and its stream replicating. It owns one ModuleReplication,
the secondary's receive path for that module (connections handed over by the agent's
router) and the control socket the agent drives it by.

It stops when the agent asks (Shutdown), on SIGTERM/SIGINT (a primary role is stopped
first: unmounted once the stream's ACKs are in), or by itself when it has no role and no
agent has talked to it for IDLE_EXIT_S (the agent that started it is gone for good).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import hmac
import json
import logging
import os
import secrets
import signal
import sys
import time
from pathlib import Path

import grpc

from node_agent.dataplane.handoff import HandoffServer
from node_agent.dataplane.service import DataPlaneService
from node_agent.dataplane.spec import (
    PIDFILE,
    SPEC,
    TOKEN,
    DataPlaneSpec,
    socket_names,
    write_private,
)
from node_agent.logging_setup import setup_logging
from node_agent.malloc_tuning import keep_large_buffers
from node_agent.replication.module_repl import ModuleReplication, Role
from node_agent.replication.stream import link_tls
from node_agent.replication.stream.receiver import StreamReceiver
from node_agent.replication.stream.wire import Mode as WireMode
from protos import dataplane_pb2_grpc as dp_grpc

log = logging.getLogger("node_agent.dataplane")
IDLE_EXIT_S = 120.0
NICE = 5
TOKEN_HEADER = "x-dataplane-token"


class _TokenCheck(grpc.aio.ServerInterceptor):
    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def intercept_service(self, continuation, details):  # type: ignore[no-untyped-def]
        given = dict(details.invocation_metadata or ()).get(TOKEN_HEADER, "")
        if hmac.compare_digest(str(given).encode(), self._token):
            return await continuation(details)

        async def refuse(request, context):  # type: ignore[no-untyped-def]
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED, "wrong or missing data plane token"
            )

        return grpc.unary_unary_rpc_method_handler(refuse)


def _paths(spec: DataPlaneSpec) -> link_tls.TlsPaths:
    class Paths:
        ca, cert, key = Path(spec.ca), Path(spec.cert), Path(spec.key)

    return Paths()  # type: ignore[return-value]


def build(spec: DataPlaneSpec, log_fn) -> ModuleReplication:  # type: ignore[no-untyped-def]
    return ModuleReplication(
        spec.module, spec.directories, Path(spec.copy_root), Path(spec.track_root),
        spec.node_id, spec.peer_id, spec.peer_host, spec.peer_port, _paths(spec), log_fn,
        bandwidth_cap=spec.bandwidth_cap, mode=WireMode(spec.mode), kernel=spec.kernel,
        mount_options={"writeback_cache": spec.write_cache, **spec.mount_options},
    )  # fmt: skip


async def serve(run_dir: Path) -> int:
    spec = DataPlaneSpec.from_json((run_dir / SPEC).read_text(), str(run_dir / SPEC))
    ctl_name, fd_name = socket_names(run_dir)
    loop = asyncio.get_running_loop()
    holder: list[DataPlaneService] = []
    repl = build(spec, lambda level, msg: holder[0].log_line(level, msg) if holder else None)
    stop = asyncio.Event()
    unmount_on_stop = [True]

    def shutdown(unmount: bool) -> None:
        unmount_on_stop[0] = unmount
        loop.call_soon_threadsafe(stop.set)

    service = DataPlaneService(repl, spec.digest(), shutdown)
    holder.append(service)
    service.bind_loop(loop)

    def resolve(module: str):  # type: ignore[no-untyped-def]
        return repl.secondary_applier() if module == spec.module else None

    def handle_request(module: str, payload: bytes) -> bytes:
        if module != spec.module:
            raise KeyError(f"this data plane serves {spec.module!r}, not {module!r}")
        return repl.handle_request(payload)

    receiver = StreamReceiver(node_id=spec.node_id, peer=spec.peer_id, tls=_paths(spec),
                              resolve=resolve, handle_request=handle_request)  # fmt: skip
    token = secrets.token_hex(32)
    server = grpc.aio.server(interceptors=[_TokenCheck(token)])
    dp_grpc.add_DataPlaneServicer_to_server(service, server)
    # Bind both sockets before announcing the token: a second data plane of the same
    # module fails here (address in use) instead of taking the first one's place.
    try:
        handoff = HandoffServer(fd_name, token, lambda c, a: loop.call_soon_threadsafe(
            receiver.adopt, c, a))  # fmt: skip
    except OSError as e:
        raise OSError(e.errno, f"another data plane of {spec.module} runs for {run_dir} "
                      f"(its socket is in use: {e.strerror})") from None  # fmt: skip
    try:
        server.add_insecure_port(f"unix-abstract:{ctl_name}")
    except RuntimeError as e:
        handoff.close()
        raise OSError(f"data plane of {spec.module}: cannot listen on its control socket "
                      f"({e})") from None  # fmt: skip
    await server.start()
    write_private(run_dir / TOKEN, token)
    write_private(run_dir / PIDFILE, f"{os.getpid()}\n")
    handoff.start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    progress = loop.create_task(service.progress_loop())
    log.info("data plane of %s started (pid %d)", spec.module, os.getpid())
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await stop.wait()
            idle = time.monotonic() - service.last_agent_seen
            if repl.role is Role.NONE and not service._subscribers and idle > IDLE_EXIT_S:
                log.info("no role and no agent for %.0f s: exiting", idle)
                break
    finally:
        progress.cancel()
        handoff.close()
        await receiver.close()
        if repl.role is Role.PRIMARY and unmount_on_stop[0]:
            await asyncio.to_thread(repl.stop_primary)
        repl.leave_secondary()
        service.end_events()  # within the grace below: the streams end, not cancelled
        await server.stop(1.0)
        with contextlib.suppress(OSError):
            (run_dir / TOKEN).unlink()
        log.info("data plane of %s stopped", spec.module)
    return 0


def _journal_fields(run_dir: Path) -> list[tuple[str, str]]:
    """MODULE and NODE for the journal, from the spec (serve() reports a bad one)."""
    try:
        spec = json.loads((run_dir / SPEC).read_text())
        return [("MODULE", str(spec["module"])), ("NODE", str(spec["node_id"]))]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mirrorpair-dataplane", description=__doc__)
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    keep_large_buffers()  # the data path's 1 MiB buffers: reuse, not fresh pages
    # Below the agent: under CPU pressure its heartbeats must not wait for replication
    # (late heartbeats mean a false failover; slower writes only mean slower writes).
    with contextlib.suppress(OSError):
        os.nice(NICE)
    # `kill -USR1 PID` writes every thread's stack to the log: what a stuck write waits for.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    # The journal when the agent uses it (it says so in the environment), else stderr:
    # run_dir/dataplane.log, which also keeps what bypasses logging (tracebacks, stacks).
    setup_logging(logging.INFO, identifier="mirrorpair-dataplane", log_file="-",
                  static=_journal_fields(args.run_dir))  # fmt: skip
    try:
        return asyncio.run(serve(args.run_dir))
    except OSError as e:
        print(f"mirrorpair-dataplane: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
