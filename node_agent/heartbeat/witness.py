"""Witness reachability probe (DESIGN §4).

A node that loses every heartbeat link may take over only if it still reaches
the witness: any configured ping target answering, or any TCP target accepting
a connection, within the timeout. ``reachable`` stays False until a probe
succeeds, so a freshly started node never takes over on an unproven witness.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import shutil
import signal
import time
from collections.abc import Awaitable, Callable

from node_agent.config.model import WitnessConfig

log = logging.getLogger(__name__)

_SBIN_PATH = "/usr/sbin:/sbin:/usr/bin:/bin"  # ping may live outside a service's PATH


def split_host_port(target: str) -> tuple[str, int]:
    """Split "host:port" or "[v6addr]:port" into (host, port). Raises ValueError."""
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"witness tcp target must be host:port, not {target!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class WitnessProbe:
    def __init__(
        self,
        config: WitnessConfig,
        grace_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """grace_s: failures must span this long before the witness counts as lost,
        so one lost ping cannot take down a primary (the engine passes the heartbeat
        timeout)."""
        self.config = config
        self.grace_s = grace_s
        self._clock = clock
        self._last_ok = -math.inf
        self._reachable = False
        self._answering = False
        self._ping = shutil.which("ping") or shutil.which("ping", path=_SBIN_PATH)

    @property
    def configured(self) -> bool:
        return self.config.configured

    @property
    def answering(self) -> bool:
        """The last probe succeeded."""
        return self._answering

    @property
    def reachable(self) -> bool:
        """False before the first success, when not configured, and after failures
        lasting grace_s."""
        return self._reachable

    async def probe_once(self) -> bool:
        """Probe every target concurrently; True as soon as one answers."""
        probes = [self._ping_one(h) for h in self.config.ping]
        probes += [self._tcp_one(t) for t in self.config.tcp]
        tasks = [asyncio.ensure_future(p) for p in probes]
        result = False
        try:
            for next_done in asyncio.as_completed(tasks):
                if await next_done:
                    result = True
                    break
        finally:
            for task in tasks:
                task.cancel()
            # Reap the cancelled probes (ping children included) before returning.
            await asyncio.gather(*tasks, return_exceptions=True)
        now = self._clock()
        self._answering = result
        if result:
            self._last_ok = now
            self._reachable = True
        elif now - self._last_ok >= self.grace_s:
            self._reachable = False
        return self._reachable

    async def run(self, on_change: Callable[[bool], object]) -> None:
        """Probe every interval until cancelled; call ``on_change(reachable)`` on changes.

        Returns at once when no witness is configured (``reachable`` stays False).
        ``on_change`` may be a plain function or a coroutine function.
        """
        if not self.configured:
            return
        previous = self._reachable
        while True:
            started = time.monotonic()
            now_reachable = await self.probe_once()
            if now_reachable != previous:
                previous = now_reachable
                log.info("witness %s", "reachable" if now_reachable else "unreachable")
                try:
                    outcome = on_change(now_reachable)
                    if isinstance(outcome, Awaitable):
                        await outcome
                except Exception:
                    log.exception("witness on_change callback failed")
            elapsed = time.monotonic() - started
            await asyncio.sleep(max(0.0, self.config.interval_s - elapsed))

    async def _ping_one(self, host: str) -> bool:
        if self._ping is None:
            log.warning("witness: no ping program, cannot probe %s", host)
            return False
        timeout = self.config.timeout_s
        # ping's -W takes whole seconds on some implementations (busybox): round up.
        wait = str(max(1, math.ceil(timeout)))
        try:
            proc = await asyncio.create_subprocess_exec(
                self._ping,
                "-c1",
                f"-W{wait}",
                "-n",
                host,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError as exc:  # fork/exec failure: this probe fails, the others still count
            log.warning("witness: cannot run ping: %s", exc)
            return False
        try:
            # Bound the wait ourselves too: DNS or a hung ping must not stall the probe.
            return await asyncio.wait_for(proc.wait(), timeout + 1.0) == 0
        except TimeoutError:
            return False
        finally:
            if proc.returncode is None:  # timed out, or cancelled: another target answered
                # os.kill, not proc.kill(): Popen.send_signal polls (waitpid WNOHANG) first
                # and may reap the child under asyncio's watcher thread, which then logs
                # "Unknown child process" and reports exit status 255.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                await proc.wait()

    async def _tcp_one(self, target: str) -> bool:
        try:
            host, port = split_host_port(target)
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), self.config.timeout_s
            )
        except (OSError, TimeoutError, ValueError) as exc:
            log.debug("witness tcp %s: %s", target, exc)
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
