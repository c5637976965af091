"""The `mirrorpair` subcommands that talk to agents: state, status, module commands, log."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field

import grpc

from node_agent.cli import render, swap_wait
from node_agent.cli.client import (
    AgentCallError,
    AgentClient,
    AgentClientError,
    AgentUnavailable,
    TlsFiles,
    ask_all,
    connect_cluster,
    tls_files,
)
from node_agent.cli.exits import Exit
from node_agent.cli.follow import follow_logs
from node_agent.cli.select import CONFIRM, PRIMARY_STATES, local_node, plan_targets
from node_agent.config.load import load_config
from node_agent.config.model import ClusterConfig
from node_agent.core.states import State
from protos import mirrorpair_pb2 as pb

# Short names for the codes used throughout (node_agent/cli/exits.py documents them).
EXIT_OK = Exit.OK
EXIT_REFUSED = Exit.REFUSED
EXIT_UNREACHABLE = Exit.UNREACHABLE
EXIT_UNKNOWN_MODULE = Exit.UNKNOWN_MODULE
EXIT_SETUP = Exit.LOCAL
STOP_WAIT_MIN_S = 60.0


@dataclass
class Context:
    """What the subcommands share: the parsed args, and lazily the config and clients."""

    args: argparse.Namespace
    _config: ClusterConfig | None = None
    _clients: dict[str, AgentClient] = field(default_factory=dict)

    def config(self) -> ClusterConfig:
        if self._config is None:
            self._config = load_config(self.args.config)
        return self._config

    def local_node(self) -> str:
        return local_node(self.config(), self.args.local_node)

    def tls(self) -> TlsFiles:
        a = self.args
        return tls_files(self.config(), a.ca, a.cert, a.key, a.local_node)

    def clients(self) -> dict[str, AgentClient]:
        if not self._clients:
            self._clients = connect_cluster(self.config(), self.tls(), timeout=self.args.timeout)
        return self._clients

    def close(self) -> None:
        for c in self._clients.values():
            c.close()


def _err(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()} (mirrorpair CLI)"


def _unknown_module(module: str, known: list[str]) -> int:
    _err(f"unknown module {module!r} (modules: {', '.join(known) or 'none'})")
    return EXIT_UNKNOWN_MODULE


def cmd_state(ctx: Context, args: argparse.Namespace) -> int:
    """Print the module's state on one node; the exit code is the state (scripts)."""
    node = args.target_node or ctx.local_node()
    client = ctx.clients()[node]
    try:
        status = client.status()
    except AgentClientError as e:  # no state could be read: never a state's exit code
        _err(str(e))
        return EXIT_UNREACHABLE
    module = render.find_module(status, args.module)
    if module is None:
        return _unknown_module(args.module, [m.name for m in status.modules])
    print(render.state_name(module.state))
    try:
        return State(module.state).exit_code
    except ValueError:  # STATE_UNSPECIFIED: the agent does not know yet
        _err(f"agent {node} reports no state for {args.module} (yet)")
        return EXIT_REFUSED


def _addresses(ctx: Context) -> dict[str, str]:
    return {n: c.address for n, c in ctx.clients().items()}


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    results = ask_all(ctx.clients(), lambda c: c.status())
    cluster = ctx.config().name
    if args.json:
        doc = render.status_document(results, _addresses(ctx), cluster)
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        print(render.render_status(results, _addresses(ctx), cluster))
    answered = any(isinstance(r, pb.NodeStatus) for r in results.values())
    return EXIT_OK if answered else EXIT_UNREACHABLE


def risk_text(command: str, module: str, node: str, m: pb.ModuleStatus | None) -> str:
    """What a command that asks first would do, in the words of the question."""
    if command == "forcestop":
        return f"force-stop {module} on {node} at once (no clean handover)"
    if m is None:
        return f"force {node} primary for {module}; its copy's state is unknown"
    if m.uptodate:
        return f"force {node} primary for {module} (its copy is up to date)"
    return (
        f"force {node} primary for {module} although its copy is NOT up to date: what was "
        "written on the other node since they were last in sync will be missing here"
    )


def confirm(question: str, yes: bool) -> int:
    """Exit.OK when the command may go ahead: --yes, or "y" typed on a terminal.
    Without a terminal and without --yes it must not go ahead: nobody agreed."""
    if yes:
        return EXIT_OK
    if not sys.stdin.isatty():
        _err(f"this would {question}: not done without confirmation (no terminal to ask "
             "on); add --yes to confirm")  # fmt: skip
        return Exit.NOT_CONFIRMED
    print(f"This will {question}. Continue? [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    if answer.strip().lower() in ("y", "yes"):
        return EXIT_OK
    print("cancelled", file=sys.stderr)
    return Exit.NOT_CONFIRMED


def _module_state(res: pb.NodeStatus | AgentClientError, module: str) -> int | None:
    if not isinstance(res, pb.NodeStatus):
        return None
    m = render.find_module(res, module)
    return m.state if m is not None else None


def _wait_stopped(client: AgentClient, module: str, timeout_s: float) -> bool:
    """Poll until the module is STOP on that node (before stopping the primary)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if _module_state(client.status(), module) == pb.STATE_STOP:
                return True
        except AgentClientError:
            pass
        time.sleep(0.3)
    return False


def cmd_module(ctx: Context, args: argparse.Namespace) -> int:
    """start/stop/restart/... MODULE: route to the right node(s), send, print the replies."""
    command, module = args.command, args.module
    clients = ctx.clients()
    results = ask_all(clients, lambda c: c.status())
    known = render.module_names(results)
    if not any(isinstance(r, pb.NodeStatus) for r in results.values()):
        for r in results.values():
            _err(str(r))
        return EXIT_UNREACHABLE
    if module not in known:
        return _unknown_module(module, known)
    states = {n: _module_state(r, module) for n, r in results.items()}
    try:
        targets = plan_targets(command, module, args.target_node, states)
    except ValueError as e:
        _err(str(e))
        return EXIT_REFUSED
    if not targets:
        word = "started" if command == "start" else "stopped"
        print(f"{module} is already {word} on both nodes")
        return EXIT_OK
    if command in CONFIRM:
        target = results.get(targets[0])
        m = render.find_module(target, module) if isinstance(target, pb.NodeStatus) else None
        answer = confirm(risk_text(command, module, targets[0], m), args.yes)
        if answer != EXIT_OK:
            return answer
    if getattr(args, "wait", False):
        return _send_and_wait(ctx, args, targets[0], results.get(targets[0]))
    refused = unreachable = False
    for i, node in enumerate(targets):
        outcome = _send(clients[node], results.get(node), module, command, args.fullsync)
        if outcome == EXIT_UNKNOWN_MODULE:
            return outcome
        refused |= outcome == EXIT_REFUSED
        unreachable |= outcome == EXIT_UNREACHABLE
        rest = targets[i + 1 :]
        # A non-primary must be down before the primary stops, or it would take over.
        if command == "stop" and rest and states[node] not in PRIMARY_STATES:
            if outcome == EXIT_UNREACHABLE:
                continue  # nothing to wait for; it cannot be helped from here
            if outcome != EXIT_OK or not _wait_stopped(clients[node], module, _stop_wait(ctx)):
                print(
                    f"not stopping {module} on {', '.join(rest)}: {node} did not stop "
                    f"(stopping it anyway would let {node} take over; use --node)"
                )
                return EXIT_REFUSED
    if refused:
        return EXIT_REFUSED
    return EXIT_UNREACHABLE if unreachable else EXIT_OK


def _send(
    client: AgentClient,
    known: pb.NodeStatus | AgentClientError | None,
    module: str,
    command: str,
    fullsync: bool,
) -> int:
    """Send one command and print the agent's reply; returns an EXIT_* code."""
    node = client.node_id
    if isinstance(known, AgentUnavailable):  # it already failed to answer: don't wait again
        print(f"{node}: not sent: {known}")
        return EXIT_UNREACHABLE
    try:
        reply = client.command(module, command, _who(), fullsync)
    except AgentUnavailable as e:
        print(f"{node}: not sent: {e}")
        return EXIT_UNREACHABLE
    except AgentCallError as e:
        print(f"{node}: REFUSED: {e.detail}")
        return EXIT_UNKNOWN_MODULE if e.code == grpc.StatusCode.NOT_FOUND else EXIT_REFUSED
    print(f"{node}: {'accepted' if reply.accepted else 'REFUSED'}: {reply.message}")
    return EXIT_OK if reply.accepted else EXIT_REFUSED


def _send_and_wait(
    ctx: Context,
    args: argparse.Namespace,
    node: str,
    known: pb.NodeStatus | AgentClientError | None,
) -> int:
    """swap/migrate --wait: send to the primary, then follow until the roles exchanged."""
    other = next(n for n in ctx.clients() if n != node)
    with swap_wait.watch_for_swap(ctx.clients()) as watch:
        outcome = _send(ctx.clients()[node], known, args.module, args.command, False)
        if outcome != EXIT_OK:
            return outcome
        return swap_wait.wait_swapped(watch, args.module, node, other, args.wait_timeout)


def _stop_wait(ctx: Context) -> float:
    try:
        return max(STOP_WAIT_MIN_S, ctx.config().module(ctx.args.module).stop_timeout_s + 30)
    except KeyError:
        return STOP_WAIT_MIN_S


def cmd_log(ctx: Context, args: argparse.Namespace) -> int:
    clients = ctx.clients()
    if args.target_node:
        clients = {args.target_node: clients[args.target_node]}
    if args.follow:
        return follow_logs(clients, args)
    results = ask_all(
        clients, lambda c: c.logs(args.module or "", args.limit, args.level or "", args.grep or "")
    )
    answers = {n: r for n, r in results.items() if isinstance(r, list)}
    for node, r in results.items():
        if isinstance(r, AgentClientError):
            _err(f"{node}: {r}")
    if not answers:
        not_found = [
            r
            for r in results.values()
            if isinstance(r, AgentCallError) and r.code == grpc.StatusCode.NOT_FOUND
        ]
        if not_found:
            return EXIT_UNKNOWN_MODULE
        calls = [r for r in results.values() if isinstance(r, AgentCallError)]
        return EXIT_REFUSED if calls else EXIT_UNREACHABLE
    for entry in render.merge_logs(answers, args.limit):
        print(render.format_log_entry(entry))
    return EXIT_OK
