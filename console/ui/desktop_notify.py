"""Desktop notifications through the desktop's notification service (the freedesktop
org.freedesktop.Notifications D-Bus service, via desktop-notifier), for desktops that
have no system tray to show balloons from: GNOME has the service but no tray.

Never in the operator's way: sent on the event loop with a time limit, so a missing,
broken or frozen session bus costs a line in the status bar, not a crash or a hang."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from console.model.alerts import Severity
from console.ui.theme import APP_ICON

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 5.0
APP_NAME = "MirrorPair"


class DesktopNotifications:
    """``on_status(text)`` hears how delivery goes ("desktop notifications" once one is
    delivered, or why none can be)."""

    def __init__(self, on_status: Callable[[str], None], timeout_s: float = SEND_TIMEOUT_S) -> None:
        self._on_status = on_status
        self.timeout_s = timeout_s
        self._notifier: object | None = None
        self._tasks: set[asyncio.Task[bool]] = set()
        self.delivered: list[str] = []  # titles the service took (tests, the status bar)
        self.status = "desktop notifications not tried yet"

    def notify(self, title: str, message: str, severity: Severity) -> None:
        """Send in the background (returns at once)."""
        try:
            task = asyncio.ensure_future(self.send(title, message, severity))
        except RuntimeError as e:  # no event loop: nothing can be sent
            self._set_status(f"no desktop notifications: {e}")
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def send(self, title: str, message: str, severity: Severity) -> bool:
        """True when the notification service took it."""
        try:
            from desktop_notifier import DesktopNotifier, Icon, Urgency
        except ImportError:
            self._set_status("no desktop notifications: desktop-notifier is not installed")
            return False
        if self._notifier is None:
            # Our icon, not the library's default Python logo.
            icon = Icon(path=APP_ICON) if APP_ICON.exists() else None
            self._notifier = DesktopNotifier(app_name=APP_NAME, app_icon=icon)
        notifier = self._notifier
        urgency = Urgency.Critical if severity is Severity.CRITICAL else Urgency.Normal
        dispatched = asyncio.Event()
        try:
            async with asyncio.timeout(self.timeout_s):
                # desktop-notifier logs and swallows a failed send; on_dispatched runs
                # only when the service accepted the notification.
                await notifier.send(  # type: ignore[attr-defined]
                    title, message, urgency=urgency, on_dispatched=dispatched.set
                )
        except TimeoutError:
            self._forget()
            self._set_status(
                f"no desktop notifications: the session bus did not answer within "
                f"{self.timeout_s:g}s"
            )
            return False
        except Exception as e:  # a broken bus must not break the console
            self._forget()
            self._set_status(f"no desktop notifications: {type(e).__name__}: {e}")
            return False
        if not dispatched.is_set():
            self._forget()  # connect again next time: the service may have started since
            self._set_status("no desktop notifications: no notification service on the session bus")
            return False
        self.delivered.append(title)
        self._set_status("desktop notifications")
        return True

    def _forget(self) -> None:
        # A half-made connection is dropped; the next alert tries afresh.
        notifier, self._notifier = self._notifier, None
        backend = getattr(notifier, "_backend", None)
        bus = getattr(backend, "bus", None)
        if bus is not None:
            with contextlib.suppress(Exception):
                bus.disconnect()

    def _set_status(self, text: str) -> None:
        if text != self.status:
            log.info("%s", text)
        self.status = text
        self._on_status(text)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._forget()
