"""The ``app`` resource: a module's start / stop / check command lines (DESIGN §6).

A thin driver: it runs what it is told and reports. When to start or stop is
decided by the module automaton elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from node_agent.config.model import ModuleConfig
from node_agent.resources.common import (
    LogFn,
    ResourceError,
    ResourceResult,
    format_seconds,
    module_env,
    run_shell,
)
from node_agent.resources.resource import ResourceInfo

__all__ = ["AppResource", "ResourceError", "ResourceResult"]


class AppResource:
    """The ``app`` kind of ``Resource``."""

    kind = "app"

    def __init__(
        self,
        module: str,
        *,
        start: str,
        stop: str,
        check: str = "",
        start_timeout_s: float = 30.0,
        stop_timeout_s: float = 30.0,
        check_timeout_s: float = 10.0,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        log: LogFn,
        node: str = "",
        vip: str = "",
    ) -> None:
        self.module = module
        self.start_command = start
        self.stop_command = stop
        self.check_command = check
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.check_timeout_s = check_timeout_s
        self.cwd = cwd
        self._log = log
        self.env = module_env(module, node, vip, env)

    @classmethod
    def from_config(
        cls,
        cfg: ModuleConfig,
        *,
        node: str,
        log: LogFn,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> AppResource:
        return cls(
            cfg.name,
            start=cfg.start,
            stop=cfg.stop,
            check=cfg.check,
            start_timeout_s=cfg.start_timeout_s,
            stop_timeout_s=cfg.stop_timeout_s,
            check_timeout_s=cfg.check_timeout_s,
            env=env,
            cwd=cwd,
            log=log,
            node=node,
            vip=cfg.vip.address if cfg.vip else "",
        )

    async def start(self) -> ResourceResult:
        return await self._run("start", self.start_command, self.start_timeout_s)

    async def stop(self, force: bool = False) -> ResourceResult:
        # An application is stopped by its own command, forced or not: the agent does
        # not know its processes (a daemon leaves the command's process group).
        return await self._run("stop", self.stop_command, self.stop_timeout_s)

    async def check(self) -> ResourceResult:
        # Checks run every few seconds: their output and successes stay at debug level.
        return await self._run("check", self.check_command, self.check_timeout_s, quiet=True)

    async def can_run(self) -> ResourceResult:
        return ResourceResult(True, "an application's start command is not checked ahead")

    async def found_running(self) -> bool:
        # Asked at every agent start: "not running" is the usual answer, not a warning.
        if not self.check_command.strip():
            return False
        result = await self._run("check", self.check_command, self.check_timeout_s,
                                 quiet=True, failure_level="debug")  # fmt: skip
        return result.ok

    def describe(self) -> ResourceInfo:
        return ResourceInfo(self.kind)

    async def _run(
        self, action: str, command: str, timeout_s: float, *, quiet: bool = False,
        failure_level: str = "",
    ) -> ResourceResult:  # fmt: skip
        if not command.strip():
            return ResourceResult(ok=True, detail=f"no {action} command")
        out_level = "debug" if quiet else "info"
        if not quiet:
            self._log("info", f"{action}: running {action} command")

        def on_line(line: str) -> None:
            self._log(out_level, f"{action}: {line}")

        began = time.monotonic()
        outcome = await run_shell(
            command, timeout_s=timeout_s, env=self.env, cwd=self.cwd, on_line=on_line
        )
        took = time.monotonic() - began
        if outcome.error:
            result = ResourceResult(ok=False, detail=f"{action}: {outcome.error}")
        elif outcome.timed_out:
            result = ResourceResult(
                ok=False,
                detail=f"{action} command timed out after {format_seconds(timeout_s)}",
                output=outcome.output,
                returncode=outcome.returncode,
            )
        elif outcome.returncode == 0:
            result = ResourceResult(
                ok=True,
                detail=f"{action} command succeeded ({took:.1f}s)",
                output=outcome.output,
                returncode=0,
            )
        else:
            result = ResourceResult(
                ok=False,
                detail=f"{action} command failed: {_describe_status(outcome.returncode)}",
                output=outcome.output,
                returncode=outcome.returncode,
            )
        if not result.ok:
            self._log(failure_level or ("warning" if quiet else "error"), result.detail)
        elif not quiet:
            self._log("info", result.detail)
        return result


def _describe_status(returncode: int | None) -> str:
    if returncode is None:
        return "no exit status"
    if returncode < 0:
        return f"killed by signal {-returncode}"
    return f"exit status {returncode}"
