"""Checkers (DESIGN §6): probes that say whether a module is healthy, and their bookkeeping.

The probes are thin drivers; ``CheckerTracker`` is pure (time passed in) and
turns a stream of probe results into "apply the configured action now".
What the action does (restart, stopstart, wait) is decided elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from pyroute2 import IPRoute

from node_agent.config.model import CheckerAction, CheckerConfig, CheckerKind
from node_agent.resources.common import LogFn, format_seconds, run_shell
from node_agent.resources.resource import Resource

IFF_UP = 0x1


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str
    # The application does not answer (yet): what a probe of it gives while it starts,
    # unlike "its process is gone" (see counts_as_failure).
    not_up_yet: bool = False
    unknown: bool = False  # it could not find out: neither a pass nor a failure


class Checker(Protocol):
    cfg: CheckerConfig

    async def check(self) -> CheckResult: ...


def make_checker(
    cfg: CheckerConfig, resource: Resource | None, *, log: LogFn | None = None
) -> Checker:
    """Build the probe for cfg. ``resource`` is required for kind process (it asks the
    resource); command checkers also run in its environment (MIRRORPAIR_* variables)."""
    kind = CheckerKind(cfg.kind)
    if kind is CheckerKind.PROCESS:
        if resource is None:
            raise ValueError(f"checker {cfg.name!r}: kind process needs the module's resource")
        return ProcessChecker(cfg, resource)
    if kind is CheckerKind.HOST:
        if resource is None:
            raise ValueError(f"checker {cfg.name!r}: kind host needs the module's resource")
        return HostChecker(cfg, resource)
    if kind is CheckerKind.TCP:
        return TcpChecker(cfg)
    if kind is CheckerKind.PING:
        return PingChecker(cfg)
    if kind is CheckerKind.INTERFACE:
        return InterfaceChecker(cfg)
    if kind is not CheckerKind.COMMAND:
        raise ValueError(f"checker {cfg.name!r}: unknown kind {kind!r}")
    env = resource.env if resource is not None else None
    cwd = resource.cwd if resource is not None else None
    return CommandChecker(cfg, env=env, cwd=cwd, log=log)


class ProcessChecker:
    """Asks the module's resource whether it runs (the app's check command, a VM's
    domain state)."""

    def __init__(self, cfg: CheckerConfig, resource: Resource) -> None:
        self.cfg = cfg
        self._resource = resource

    async def check(self) -> CheckResult:
        result = await self._resource.check()
        return CheckResult(result.ok, result.detail, result.not_up_yet, result.unknown)


class HostChecker:
    """Asks the module's resource whether this node could start it (a VM: libvirt
    answers, no domain of that name defined outside MirrorPair, enough memory)."""

    def __init__(self, cfg: CheckerConfig, resource: Resource) -> None:
        self.cfg = cfg
        self._resource = resource

    async def check(self) -> CheckResult:
        result = await self._resource.can_run()
        return CheckResult(result.ok, result.detail)


def split_host_port(target: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port); ValueError when malformed."""
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {target!r}")
    return host.strip("[]"), int(port)


class TcpChecker:
    def __init__(self, cfg: CheckerConfig) -> None:
        self.cfg = cfg

    async def check(self) -> CheckResult:
        try:
            host, port = split_host_port(self.cfg.target)
        except ValueError as exc:
            return CheckResult(False, str(exc))
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), self.cfg.timeout_s
            )
        except TimeoutError:
            return CheckResult(
                False,
                f"tcp {host}:{port}: timed out after {format_seconds(self.cfg.timeout_s)}",
                not_up_yet=True,
            )
        except OSError as exc:
            # asyncio's strerror is "Connect call failed (...)"; the errno says why.
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            return CheckResult(False, f"tcp {host}:{port}: {reason}", not_up_yet=True)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return CheckResult(True, f"tcp {host}:{port}: connected")


class PingChecker:
    def __init__(self, cfg: CheckerConfig) -> None:
        self.cfg = cfg

    async def check(self) -> CheckResult:
        host = self.cfg.target
        ping = shutil.which("ping") or shutil.which("ping", path="/usr/sbin:/sbin:/bin")
        if ping is None:
            return CheckResult(False, "no ping program")
        wait = max(1, math.ceil(self.cfg.timeout_s))  # -W is whole seconds on older iputils
        outcome = await run_shell(
            f"exec {ping} -c1 -W {wait} -n -- {shlex.quote(host)}", timeout_s=wait + 2.0
        )
        if outcome.returncode == 0:
            return CheckResult(True, f"ping {host}: reply")
        if outcome.timed_out:
            return CheckResult(False, f"ping {host}: timed out")
        last = outcome.output.strip().splitlines()[-1:] or [f"exit {outcome.returncode}"]
        return CheckResult(False, f"ping {host}: no reply ({last[0]})")


class InterfaceChecker:
    def __init__(self, cfg: CheckerConfig) -> None:
        self.cfg = cfg

    async def check(self) -> CheckResult:
        return await asyncio.to_thread(self._check)

    def _check(self) -> CheckResult:
        name = self.cfg.target
        try:
            with IPRoute() as ipr:
                found = ipr.link_lookup(ifname=name)
                if not found:
                    return CheckResult(False, f"interface {name}: no such interface")
                link = ipr.link("get", index=found[0])[0]
        except OSError as exc:  # NetlinkError is an OSError too
            return CheckResult(False, f"interface {name}: {exc}")
        admin_up = bool(link.get("flags", 0) & IFF_UP)
        operstate = link.get("IFLA_OPERSTATE") or "UNKNOWN"
        # lo, dummy and tun devices report UNKNOWN while perfectly usable.
        if admin_up and operstate in ("UP", "UNKNOWN"):
            return CheckResult(True, f"interface {name}: up ({operstate})")
        admin = "up" if admin_up else "down"
        return CheckResult(False, f"interface {name}: down (admin {admin}, operstate {operstate})")


class CommandChecker:
    def __init__(
        self,
        cfg: CheckerConfig,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        log: LogFn | None = None,
    ) -> None:
        self.cfg = cfg
        self._env = env
        self._cwd = cwd
        self._log = log

    async def check(self) -> CheckResult:
        log = self._log
        name = self.cfg.name

        def on_line(line: str) -> None:
            if log is not None:
                log("debug", f"checker {name}: {line}")

        outcome = await run_shell(
            self.cfg.target,
            timeout_s=self.cfg.timeout_s,
            env=self._env,
            cwd=self._cwd,
            on_line=on_line,
        )
        if outcome.error:
            return CheckResult(False, outcome.error)
        # A probe command that fails or hangs may be asking an application still starting.
        if outcome.timed_out:
            return CheckResult(False, f"timed out after {format_seconds(self.cfg.timeout_s)}",
                               not_up_yet=True)  # fmt: skip
        if outcome.returncode == 0:
            return CheckResult(True, "exit status 0")
        last = outcome.output.strip().splitlines()[-1:]
        suffix = f": {last[0]}" if last else ""
        return CheckResult(False, f"exit status {outcome.returncode}{suffix}", not_up_yet=True)


# -- pure bookkeeping ---------------------------------------------------------


@dataclass(frozen=True)
class CheckerVerdict:
    ok: bool  # this result
    consecutive_failures: int
    failing: bool  # consecutive_failures >= cfg.failures (the visible state)
    trip: bool  # this result made the count reach cfg.failures: apply `action` now
    cleared: bool  # this result is ok after the checker was failing (e.g. leave WAIT)
    action: CheckerAction
    detail: str


def counts_as_failure(
    result: CheckResult,
    runs_where_primary: bool,
    started_at: float | None,
    start_timeout_s: float,
    now: float,
) -> bool:
    """Whether a result counts against the module. A probe of the application that does
    not answer while its start is still waited for (up to start_timeout_s after it, until
    every probe passed once) does not: a VM's guest boots, a service opens its port. A
    probe that says the application died counts at once, and so does any probe after the
    start's time is up."""
    if result.ok or not result.not_up_yet or not runs_where_primary:
        return not result.ok
    return started_at is None or now - started_at >= start_timeout_s


class CheckerTracker:
    """Counts consecutive failures and schedules probes; no clock of its own."""

    def __init__(self, cfg: CheckerConfig) -> None:
        self.cfg = cfg
        self.threshold = max(1, cfg.failures)
        self.consecutive_failures = 0
        self.last_ok: bool | None = None  # None until the first result
        self.last_detail = ""
        self.last_time: float | None = None
        self.next_due = -math.inf  # due at once

    @property
    def failing(self) -> bool:
        return self.consecutive_failures >= self.threshold

    def due(self, now: float) -> bool:
        return now >= self.next_due

    def record(self, ok: bool, now: float, detail: str = "") -> CheckerVerdict:
        ok = bool(ok)
        was_failing = self.failing
        self.consecutive_failures = 0 if ok else self.consecutive_failures + 1
        self.last_ok = ok
        self.last_detail = detail
        self.last_time = now
        self.next_due = now + max(0.0, self.cfg.interval_s)
        return CheckerVerdict(
            ok=ok,
            consecutive_failures=self.consecutive_failures,
            failing=self.failing,
            trip=self.consecutive_failures == self.threshold,
            cleared=ok and was_failing,
            action=self.cfg.action,
            detail=detail,
        )

    def wait(self, now: float, detail: str) -> None:
        """A probe that is neither a pass nor a failure (an application still starting
        that does not answer yet, a state that cannot be found out): asked again after
        the interval."""
        self.last_ok = None  # not a pass: the status must not show the last one
        self.last_detail = detail
        self.next_due = now + max(0.0, self.cfg.interval_s)

    def reset(self) -> None:
        """Forget the failure run, e.g. after a restart, so the restarted module
        gets cfg.failures fresh attempts before the action fires again."""
        self.consecutive_failures = 0
