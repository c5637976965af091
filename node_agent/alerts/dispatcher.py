"""The thin driver around AlertPolicy: feeds it the engine's transitions, asks it for
due alerts every second, and sends each alert to the hook and, gathered for up to
``batch_s`` with the alerts after it (batch.py), by e-mail (docs/alerts.md).

Nothing here may hold up the engine's loop: ``observe`` only queues, the hook runs as a
subprocess with a timeout, and SMTP runs in a daemon thread of its own (a hung mail
server never delays the agent, nor its exit, nor the hook). Every outcome lands in the
module's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from node_agent.alerts import memory
from node_agent.alerts.batch import Batch, MailBatcher
from node_agent.alerts.hook import HookError, hook_problem, run_hook
from node_agent.alerts.mail import EmailError, email_problem, send_email
from node_agent.alerts.policy import Alert, AlertPolicy, Transition
from node_agent.config.model import AlertsConfig, ClusterConfig, EmailConfig
from node_agent.core.transitions import LogRecord
from node_agent.engine.logbook import LogBook

log = logging.getLogger(__name__)
TICK_S = 1.0  # how often the policy's timers are looked at
QUEUE_MAX = 200  # alerts waiting for the hook; beyond that one is dropped, and logged
EXIT_MAIL_S = 10.0  # how long a stopping agent waits for its last e-mails


class AlertDispatcher:
    def __init__(self, config: Callable[[], ClusterConfig], node: str, peer: str,
                 logbook: LogBook, clock: Callable[[], float] = time.time,
                 data_dir: Path | None = None, boot_id: str | None = None) -> None:  # fmt: skip
        self._config = config  # read at each use: a new configuration version applies live
        self.logbook = logbook
        self._clock = clock  # wall time, as the transitions' records carry
        self.policy = AlertPolicy(node, peer)
        self._data_dir, self._boot_id = data_dir, boot_id  # where memory.py keeps episodes
        self._remembered: memory.Memory = {}
        if data_dir is not None:
            self._remembered = memory.load(data_dir, boot_id)
            for module, (kinds, restored_at) in self._remembered.items():
                self.policy.remember(module, kinds, restored_at)
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(QUEUE_MAX)  # for the hook
        self._mail = MailBatcher(self.settings.batch_s)  # its window on the monotonic clock
        self._mails: asyncio.Queue[Batch] = asyncio.Queue()  # ready to be e-mailed

    @property
    def settings(self) -> AlertsConfig:
        return self._config().alerts

    def _configure_policy(self) -> None:
        s = self.settings
        self.policy.settle_s, self.policy.events = s.settle_s, frozenset(s.events)
        self._mail.window_s = s.batch_s

    def observe(self, rec: LogRecord) -> None:
        """A record the engine logged; state transitions may become alerts."""
        if rec.old_state is None or rec.new_state is None or rec.new_readiness is None:
            return
        self._configure_policy()
        reason = rec.message.partition(": ")[2] or rec.message  # "A/R -> B/R: reason"
        t = Transition(rec.time, rec.module, rec.old_state, rec.new_state, rec.new_readiness,
                       rec.cause, reason, rec.who)  # fmt: skip
        self._enqueue(self.policy.observe(t))
        self._remember()

    def _remember(self) -> None:
        """Keep the open episodes on disk when they changed (memory.py)."""
        if self._data_dir is None:
            return
        now = self.policy.memory()
        if now != self._remembered:
            try:
                memory.save(self._data_dir, self._boot_id, now)
            except OSError as exc:  # alerts still go out; only a restart forgets them
                log.warning("cannot keep the alerts sent in %s: %s", self._data_dir, exc)
            self._remembered = now

    def _enqueue(self, alerts: list[Alert]) -> None:
        """To the hook's queue, and to the e-mail batch at once (a slow hook must not split
        what happened together into several mails)."""
        s = self.settings
        for alert in alerts:
            if s.email is not None:
                self._post_mails(self._mail.add(alert, time.monotonic()))
            if s.hook is None:
                continue
            try:
                self._queue.put_nowait(alert)
            except asyncio.QueueFull:
                self.logbook.add("ERROR", f"alert {alert.kind}: hook not run: {QUEUE_MAX} "
                                 "alerts wait for it", alert.module, "alert")  # fmt: skip

    def flush_mails(self) -> None:
        """Send what is held for company now (the agent begins to stop: the mails then go
        while its modules stop, not after)."""
        self._post_mails(self._mail.flush())

    async def run(self) -> None:
        """Until cancelled: the timers, and one alert at a time sent on every channel."""
        self.check()
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self._send_loop(), name="alert-send"),
                 loop.create_task(self._mail_loop(), name="alert-mail")]  # fmt: skip
        try:
            while True:
                self._configure_policy()
                self._enqueue(self.policy.due(self._clock()))
                self._remember()
                self._post_mails(self._mail.due(time.monotonic()))
                await asyncio.sleep(TICK_S)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._on_exit()

    async def _on_exit(self) -> None:
        """The agent stops: the mails not sent yet leave now, from a daemon thread waited
        for at most EXIT_MAIL_S; the hook runs still waiting are said to be skipped."""
        while not self._queue.empty():
            alert = self._queue.get_nowait()
            self._log(alert, "WARNING", f"alert {alert.kind}: hook not run: the agent stopped")
        cfg = self._config()
        batches: list[Batch] = []
        while not self._mails.empty():  # waiting to be sent: older than what is held
            batches.append(self._mails.get_nowait())
        batches += self._mail.flush()
        if cfg.alerts.email is None or not batches:
            return
        email, cluster = cfg.alerts.email, cfg.name

        def send_all() -> None:
            for batch in batches:
                try:
                    send_email(email, batch, cluster)
                except EmailError as exc:
                    log.error("alert e-mail (%d alerts) failed as the agent stops: %s",
                              len(batch.alerts), exc)  # fmt: skip

        sender = threading.Thread(target=send_all, name="alert-smtp-exit", daemon=True)
        sender.start()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.to_thread(sender.join, EXIT_MAIL_S)

    def check(self) -> list[str]:
        """Log (and return) what would make every alert fail, before one is needed."""
        s = self.settings
        problems = [
            hook_problem(s.hook) if s.hook else "",
            email_problem(s.email) if s.email else "",
        ]
        problems = [p for p in problems if p]
        for p in problems:
            self.logbook.add("ERROR", f"alerts cannot be sent: {p}", cause="alert")
        return problems

    async def _send_loop(self) -> None:
        while True:
            alert = await self._queue.get()
            await self.send(alert)

    async def send(self, alert: Alert) -> None:
        """The hook (the e-mail went to its batch when the alert came); its outcome logged,
        not raised."""
        cfg = self._config()
        if cfg.alerts.hook is not None:
            await self._hook(alert, cfg)

    def _post_mails(self, batches: list[Batch]) -> None:
        for batch in batches:
            self._mails.put_nowait(batch)

    async def _mail_loop(self) -> None:
        while True:
            batch = await self._mails.get()
            cfg = self._config()
            if cfg.alerts.email is not None:
                await self._email(batch, cfg.alerts.email, cfg.name)
                continue
            for alert in batch.alerts:  # [alerts.email] removed meanwhile
                self._log(alert, "WARNING", f"alert {alert.kind}: not e-mailed: the "
                          "configuration no longer has [alerts.email]")  # fmt: skip

    async def _hook(self, alert: Alert, cfg: ClusterConfig) -> None:
        assert cfg.alerts.hook is not None
        try:
            await run_hook(cfg.alerts.hook, alert, cfg.name)
        except HookError as exc:
            self._log(alert, "ERROR", f"alert {alert.kind}: hook failed: {exc}")
        else:
            self._log(alert, "INFO", f"alert {alert.kind}: hook {cfg.alerts.hook.command[0]} run")

    async def _email(self, batch: Batch, cfg: EmailConfig, cluster: str) -> None:
        others = len(batch.alerts) - 1
        also = f" (one message with {others} other alert{'s' * (others > 1)})" if others else ""
        try:
            await in_thread(lambda: send_email(cfg, batch, cluster))
        except EmailError as exc:
            for alert in batch.alerts:
                self._log(alert, "ERROR", f"alert {alert.kind}: e-mail failed{also}: {exc}")
        else:
            for alert in batch.alerts:
                self._log(alert, "INFO",
                          f"alert {alert.kind}: e-mailed to {', '.join(cfg.to)}{also}")  # fmt: skip

    def _log(self, alert: Alert, level: str, message: str) -> None:
        self.logbook.add(level, message, alert.module, "alert")


async def in_thread(fn: Callable[[], None]) -> None:
    """Run ``fn`` in a daemon thread: unlike the default executor, one that hangs never
    holds up the agent's exit."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def report(exc: BaseException | None) -> None:
        if not done.done():
            done.set_exception(exc) if exc is not None else done.set_result(None)

    def work() -> None:
        error: BaseException | None = None
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(report, error)

    threading.Thread(target=work, name="alert-smtp", daemon=True).start()
    await done
