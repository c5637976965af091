"""mirrorpair-agent: the node agent daemon.

mirrorpair-agent --config /etc/mirrorpair/cluster.toml --node node1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys

from node_agent.config.load import ConfigError, load_config
from node_agent.malloc_tuning import keep_large_buffers
from protos.security.ca import TlsError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="mirrorpair-agent",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config", default=os.environ.get("MIRRORPAIR_CONFIG", "/etc/mirrorpair/cluster.toml")
    )
    p.add_argument(
        "--node",
        default=os.environ.get("MIRRORPAIR_NODE", ""),
        help="this node's id: node1 or node2",
    )
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


async def serve(config_path: str, node_id: str) -> None:
    from node_agent.api.server import start_server
    from node_agent.config.configurator import Configurator
    from node_agent.config.store import ConfigStore
    from node_agent.engine.node import NodeEngine

    config = load_config(config_path)
    engine = NodeEngine(config, node_id)
    address = config.nodes[node_id].api
    await engine.open()
    # Configuration changes from the console: installed in config_path, applied live.
    configurator = Configurator(ConfigStore(config_path), node_id, engine.reconfigure, config,
                                log=engine.logbook.add)  # fmt: skip
    server = await start_server(engine, address, config.paths_for(node_id), configurator)
    print(f"mirrorpair-agent {node_id} ready on {address}", file=sys.stderr, flush=True)
    loop = asyncio.get_running_loop()
    task = loop.create_task(engine.run())

    def stop_once() -> None:
        # A second signal must not interrupt the clean stop the first one started.
        if not stopping:
            stopping.append(True)
            task.cancel()

    stopping: list[bool] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_once)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await server.stop(grace=1.0)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper(), logging.INFO),
        format=f"%(asctime)s {args.node or '?'} %(levelname)s %(name)s: %(message)s",
    )
    if args.node not in ("node1", "node2"):
        print(
            "mirrorpair-agent: --node must be node1 or node2 (or set MIRRORPAIR_NODE)",
            file=sys.stderr,
        )
        return 2
    keep_large_buffers()  # the data path's 1 MiB buffers: reuse, not fresh pages
    try:
        asyncio.run(serve(args.config, args.node))
    except (ConfigError, TlsError) as exc:
        print(f"mirrorpair-agent: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"mirrorpair-agent: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
