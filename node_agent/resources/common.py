"""Shared pieces of the resource drivers: results, errors, and the shell runner.

The runner is the delicate part. Start commands usually leave a daemon behind
(``myapp & echo $! > pidfile``) that inherits the command's stdout. Waiting for
EOF on that pipe would hang until the daemon dies, and closing our end would
SIGPIPE the daemon the next time it prints. So the pipe is ours (not asyncio's
subprocess pipe, which ties process completion to pipe closure): we wait for the
``sh`` process only, collect output for a short grace period afterwards, and
leave the pipe draining in the background (output capped) until the daemon
closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from node_agent.resources.child_priority import application_argv

LogFn = Callable[[str, str], None]  # (level, message); levels: debug/info/warning/error

OUTPUT_CAP = 64 * 1024  # bytes of output logged/kept per command run
KILL_GRACE_S = 2.0  # SIGTERM -> SIGKILL delay for a timed-out process group
PIPE_GRACE_S = 0.3  # how long to keep collecting output after sh has exited


class ResourceError(Exception):
    """A resource operation failed in a way the caller must handle (bad interface, EPERM...)."""


@dataclass(frozen=True)
class ResourceResult:
    ok: bool
    detail: str
    output: str = ""
    returncode: int | None = None
    # A failed check that a resource still coming up gives (a guest whose agent does not
    # answer yet), not one that says it died: no failure while its start is waited for.
    not_up_yet: bool = False
    # The check could not find out (libvirtd restarting while QEMU runs on): neither a
    # pass nor a failure; asked again at the next interval.
    unknown: bool = False


@dataclass(frozen=True)
class ShellOutcome:
    returncode: int | None  # None when the command could not be spawned
    output: str
    timed_out: bool = False
    error: str = ""  # spawn failure (bad cwd, ...)


def module_env(
    module: str, node: str, vip: str, env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of the commands run for a module (its scripts, a command checker):
    they learn which module, node and VIP they act for; the agent's own variables win
    over user-provided ones so they can be relied on."""
    return {**os.environ, **(env or {}), "MIRRORPAIR_MODULE": module, "MIRRORPAIR_NODE": node,
            "MIRRORPAIR_VIP": vip.split("/", 1)[0]}  # fmt: skip


def format_seconds(seconds: float) -> str:
    return f"{seconds:g}s"


class _LineProtocol(asyncio.Protocol):
    """Splits pipe data into lines for a callback; keeps draining after the cap."""

    def __init__(self, on_line: Callable[[str], None], cap: int) -> None:
        self._on_line = on_line
        self._cap = cap
        self._used = 0
        self._buf = b""
        self.eof: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        for line in lines:
            self._emit(line)
        if len(self._buf) > self._cap:  # a newline-less flood: flush it as one line
            self._emit(self._buf)
            self._buf = b""

    def eof_received(self) -> bool:
        return False  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        if self._buf:
            self._emit(self._buf)
            self._buf = b""
        if not self.eof.done():
            self.eof.set_result(None)

    def _emit(self, raw: bytes) -> None:
        if self._used > self._cap:
            return
        self._used += len(raw) + 1
        if self._used > self._cap:
            self._on_line(f"[output truncated at {self._cap // 1024} KiB]")
            return
        self._on_line(raw.rstrip(b"\r").decode("utf-8", errors="replace"))


# Transports still draining a daemon's inherited stdout, kept referenced here.
_draining: set[asyncio.ReadTransport] = set()


def close_drains() -> None:
    """Stop draining pipes inherited by daemons (agent shutdown)."""
    for transport in list(_draining):
        transport.close()
    _draining.clear()


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the whole group, SIGKILL whatever is left after KILL_GRACE_S."""
    loop = asyncio.get_running_loop()
    pgid = proc.pid  # start_new_session: sh is the group (and session) leader
    _killpg(pgid, signal.SIGTERM)
    deadline = loop.time() + KILL_GRACE_S
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), KILL_GRACE_S)
    # Grandchildren may ignore SIGTERM and outlive sh; the group outlives them all.
    while _group_alive(pgid) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    _killpg(pgid, signal.SIGKILL)
    await proc.wait()


_reapers: set[asyncio.Task[None]] = set()


async def _reap_cancelled(proc: asyncio.subprocess.Process) -> None:
    try:
        await _kill_group(proc)
    except asyncio.CancelledError:  # the loop is shutting down: no time for a grace period
        _killpg(proc.pid, signal.SIGKILL)
        raise


async def run_shell(
    command: str,
    *,
    timeout_s: float | None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    on_line: Callable[[str], None] | None = None,
    cap: int = OUTPUT_CAP,
) -> ShellOutcome:
    """Run ``/bin/sh -c command`` in its own session; stdout+stderr go line by line to on_line.
    An application's command: at the default nice and OOM priority, not the agent's.

    timeout_s None or <= 0 means no limit. On timeout (or cancellation) the whole
    process group is killed.
    """
    loop = asyncio.get_running_loop()
    lines: list[str] = []

    def collect(line: str) -> None:
        lines.append(line)
        if on_line is not None:
            on_line(line)

    rfd, wfd = os.pipe()
    try:
        # At nice 0 and oom_score_adj 0, not the agent's (child_priority.py).
        argv = application_argv(["/bin/sh", "-c", command])
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=wfd,
            stderr=wfd,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,  # own group: a timeout kills everything it spawned
        )
    except OSError as exc:
        os.close(rfd)
        return ShellOutcome(returncode=None, output="", error=f"could not run command: {exc}")
    finally:
        os.close(wfd)  # only the children hold the write end now

    protocol = _LineProtocol(collect, cap)
    transport, _ = await loop.connect_read_pipe(lambda: protocol, os.fdopen(rfd, "rb", 0))
    timed_out = False
    try:
        if timeout_s is not None and timeout_s > 0:
            try:
                await asyncio.wait_for(proc.wait(), timeout_s)
            except TimeoutError:
                timed_out = True
                await _kill_group(proc)
        else:
            await proc.wait()
    except asyncio.CancelledError:
        # The caller gave up (shutdown): don't leave the command running.
        reaper = asyncio.create_task(_reap_cancelled(proc))
        _reapers.add(reaper)
        reaper.add_done_callback(_reapers.discard)
        transport.close()
        raise
    # Output written just before exit may still be in the pipe; a daemon may hold it forever.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(protocol.eof), PIPE_GRACE_S)
    if not protocol.eof.done():
        _draining.add(transport)
        protocol.eof.add_done_callback(lambda _f: _draining.discard(transport))
    return ShellOutcome(returncode=proc.returncode, output="\n".join(lines), timed_out=timed_out)
