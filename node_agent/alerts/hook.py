"""Run the alert hook: the configured argv without a shell, the alert in environment
variables (MIRRORPAIR_ALERT, _MODULE, _NODE, ...) and as JSON on stdin, killed (with its
process group) at its timeout."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
from dataclasses import asdict
from typing import IO

from node_agent.alerts.policy import Alert
from node_agent.config.model import HookConfig

OUTPUT_TAIL = 400  # characters of the hook's output kept for the log


class HookError(RuntimeError):
    pass


def alert_fields(alert: Alert, cluster: str) -> dict[str, str]:
    """The alert as the hook and the e-mail see it (strings only)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(alert.time))
    data = {k: str(v) for k, v in asdict(alert).items()}
    return {**data, "kind": alert.kind.value, "cluster": cluster, "time": stamp}


def hook_env(fields: dict[str, str]) -> dict[str, str]:
    names = {"kind": "ALERT", "cluster": "CLUSTER", "module": "MODULE", "node": "NODE",
             "peer": "PEER", "state": "STATE", "cause": "CAUSE", "message": "MESSAGE",
             "time": "TIME"}  # fmt: skip
    return {f"MIRRORPAIR_{env}": fields[key] for key, env in names.items()}


async def run_hook(hook: HookConfig, alert: Alert, cluster: str) -> None:
    """Raise HookError (saying why) unless the hook exits 0 within its timeout."""
    fields = alert_fields(alert, cluster)
    stdin = json.dumps(fields, sort_keys=True).encode() + b"\n"
    # Output to a file, not a pipe: a child the hook leaves running (in the background,
    # in a session of its own) would hold a pipe open, and waiting for it would stall
    # every later alert.
    with tempfile.TemporaryFile() as out:
        try:
            proc = await asyncio.create_subprocess_exec(
                *hook.command, stdin=asyncio.subprocess.PIPE, stdout=out, stderr=out,
                env={**os.environ, **hook_env(fields)},
                start_new_session=True,  # its own group: a timeout kills what it started too
            )  # fmt: skip
        except OSError as exc:
            raise HookError(f"cannot run {hook.command[0]}: {exc}") from None
        try:
            async with asyncio.timeout(hook.timeout_s):
                await proc.communicate(stdin)
        except asyncio.CancelledError:  # the agent stops: leave no hook behind
            _kill(proc.pid)
            with contextlib.suppress(asyncio.CancelledError):
                await proc.wait()  # reaped (killed: at once)
            raise
        except TimeoutError:
            _kill(proc.pid)
            await proc.wait()
            raise HookError(f"{hook.command[0]} did not finish within {hook.timeout_s:g} s: "
                            "killed") from None  # fmt: skip
        if proc.returncode != 0:
            tail = _tail(out)
            raise HookError(f"{hook.command[0]} exited with {proc.returncode}"
                            + (f": {tail}" if tail else ""))  # fmt: skip


def _tail(f: IO[bytes]) -> str:
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - 4 * OUTPUT_TAIL))
    return f.read().decode(errors="replace").strip()[-OUTPUT_TAIL:]


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def hook_problem(hook: HookConfig) -> str:
    """Why the hook cannot run at all ("" if it looks runnable), said at agent start."""
    program = hook.command[0]
    if shutil.which(program) is None:
        return f"alerts.hook.command: {program} is not an executable program here"
    return ""
