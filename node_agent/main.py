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
import traceback
from pathlib import Path
from typing import NoReturn

from node_agent.config.load import DEFAULT_STATE_DIR, ConfigError
from node_agent.config.model import DEFAULT_API_PORT
from node_agent.host.signals import SignalAction, signal_action
from node_agent.logging_setup import setup_agent_logging
from node_agent.malloc_tuning import keep_large_buffers
from protos.security.ca import TlsError

log = logging.getLogger("node_agent.main")

# The unit's RestartPreventExitStatus: a configuration, command line or certificate the
# agent refused while starting -- restarting cannot help, the journal says why.
# Anything after the start (the engine dying of an error) exits 1 and is restarted:
# with KillMode=process the modules would otherwise run on with no agent.
EX_CONFIG = 78  # sysexits.h


class StartRefused(Exception):
    """What the agent refused before it was up (``host.start()``)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="mirrorpair-agent",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config", default=os.environ.get("MIRRORPAIR_CONFIG", "/etc/mirrorpair/cluster.toml"),
        help="the cluster configuration; absent = not set up yet (the console's wizard "
        "pairs this server and writes it)",
    )  # fmt: skip
    p.add_argument(
        "--node",
        default=os.environ.get("MIRRORPAIR_NODE", ""),
        help="this node's id: node1 or node2 (known from pairing when not given)",
    )
    p.add_argument(
        "--state-dir", default=os.environ.get("MIRRORPAIR_STATE_DIR", DEFAULT_STATE_DIR),
        help="the agent's own files: certificates from pairing, data (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--listen", default=os.environ.get("MIRRORPAIR_LISTEN", f"0.0.0.0:{DEFAULT_API_PORT}"),
        help="where an agent without configuration listens (default %(default)s)",
    )  # fmt: skip
    p.add_argument("--no-mdns", action="store_true", help="do not advertise over mDNS")
    p.add_argument(
        "--open-pairing", action="store_true",
        help="open pairing on this server (a running agent picks it up): print a new "
        "pairing code for the console's setup wizard and exit",
    )  # fmt: skip
    p.add_argument("--log-level", default="INFO")
    p.add_argument(
        "--log-file", default=os.environ.get("MIRRORPAIR_LOG_FILE", ""),
        help="where the agent logs when not under systemd (under systemd: the journal): "
        "a rotating file, default STATE_DIR/log/agent.log; '-' = stderr only",
    )  # fmt: skip
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    from node_agent.host.agent_host import AgentHost
    from node_agent.host.service import AgentService

    # systemd's notify socket and watchdog (taken from the environment before any child
    # starts), and the subreaper that reaps orphaned application daemons.
    service = AgentService.from_environ(os.environ)
    service.begin()
    host = AgentHost(
        config_path=Path(args.config), state_dir=Path(args.state_dir), node_id=args.node,
        listen=args.listen, mdns=not args.no_mdns and os.environ.get("MIRRORPAIR_MDNS") != "0",
    )  # fmt: skip
    try:
        await host.start()
    except (ConfigError, TlsError, ValueError) as exc:
        await service.close()
        raise StartRefused(str(exc)) from exc
    except BaseException:
        await service.close()
        raise
    service.follow(host)
    loop = asyncio.get_running_loop()
    task = loop.create_task(host.run())

    def stop_once() -> None:
        stopping.append(True)
        service.stopping()
        task.cancel()

    def leave_running() -> None:
        # At once: the peer declares this node dead after timeout_ms without heartbeats,
        # so the next agent must be up well within it. Nothing here needs a clean stop:
        # the data planes serve on, and the module log is flushed by the engine.
        if host.engine is not None:
            host.engine.leave_running()
        logging.shutdown()
        os._exit(0)

    def on_signal(signum: int) -> None:
        action = signal_action(signum, stopping=bool(stopping))
        if action is SignalAction.STOP:
            stop_once()
        elif action is SignalAction.LEAVE_RUNNING:
            leave_running()
        elif signum == signal.SIGUSR2:
            # A "leaving" heartbeat now would have the peer keep this node's last view
            # while its modules are being stopped here.
            log.warning("SIGUSR2 ignored: a clean stop is under way (the modules are "
                        "being stopped, not left running)")  # fmt: skip

    stopping: list[bool] = []
    # SIGTERM/SIGINT: a clean stop. SIGUSR2: exit at once, leaving every module served
    # by its data plane and resource: to restart or upgrade the agent alone
    # (docs/replication.md "The data plane").
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        await service.close()


def open_pairing(state_dir: str) -> int:
    from node_agent.host.state import StateDir, fingerprint

    state = StateDir(state_dir)
    # The certificate first: the running agent serves it as soon as the code appears.
    fp = fingerprint(state.pairing_identity()[0])
    code = state.open_pairing()
    print(f"pairing is open on this server: code {code}")
    print(f"certificate fingerprint: {fp}")
    print("a running agent serves the pairing calls within a second; enter the code in "
          "the console's setup wizard")  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse: 2 for a bad command line, 0 for --help
        return EX_CONFIG if exc.code == 2 else int(exc.code or 0)
    if args.node not in ("", "node1", "node2"):
        print(
            "mirrorpair-agent: --node must be node1 or node2 (or set MIRRORPAIR_NODE)",
            file=sys.stderr,
        )
        return EX_CONFIG
    if args.open_pairing:
        return open_pairing(args.state_dir)
    setup_agent_logging(args.log_level, args.node, args.log_file, args.state_dir)
    keep_large_buffers()  # the data path's 1 MiB buffers: reuse, not fresh pages
    _exit_now(_run(args))


def _run(args: argparse.Namespace) -> int:
    try:
        asyncio.run(serve(args))
    except StartRefused as exc:
        print(f"mirrorpair-agent: {exc}", file=sys.stderr)
        return EX_CONFIG
    except OSError as exc:
        print(f"mirrorpair-agent: {exc}", file=sys.stderr)
        return 1
    except (ConfigError, TlsError, ValueError):
        # After the start (the engine died of it): restarted, with the whole story.
        traceback.print_exc()
        return 1
    return 0


def _exit_now(code: int) -> NoReturn:
    """Exit once everything is stopped, without the interpreter's teardown: grpc's exit
    handler then waits for its poller thread (measured: 2.2 s of a 3.5 s clean stop came
    after the agent had stopped everything), which a restart or a reboot would wait for.
    Nothing of ours is left to run at exit; the logs are flushed first."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
