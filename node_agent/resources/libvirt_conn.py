"""A libvirt connection for one VM module, and libvirt's event loop (DESIGN §6).

libvirt-python is blocking: every call here runs in a worker thread (the callers use
asyncio.to_thread). Lifecycle events (the guest crashed, shut itself down, paused on
an I/O error) arrive on libvirt's default event loop, which runs in one daemon thread
per process -- libvirt allows one -- and must be registered before any connection
opens.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from node_agent.resources.common import ResourceError

log = logging.getLogger(__name__)

try:  # the vm kind needs it; an agent with only app modules does not
    import libvirt
except ImportError:  # pragma: no cover - depends on the installation
    libvirt = None  # type: ignore[assignment]

_loop_lock = threading.Lock()
_loop_started = False

# (event, detail) of VIR_DOMAIN_EVENT_* -> what happened, in an operator's words.
_STOPPED = {0: "shut down from inside the guest", 1: "destroyed", 2: "crashed",
            3: "migrated away", 4: "saved", 5: "failed (the QEMU process died)",
            6: "stopped for a snapshot"}  # fmt: skip
_SUSPENDED = {0: "paused", 1: "paused for migration", 2: "paused on an I/O error",
              3: "paused by the watchdog", 4: "paused (restored paused)",
              5: "paused (snapshot)", 6: "paused (API error)", 7: "paused (post-copy)",
              8: "paused (post-copy failed)"}  # fmt: skip


def require_libvirt() -> Any:
    if libvirt is None:
        raise ResourceError(
            "vm modules need libvirt-python (pip install libvirt-python; on Debian "
            "apt-get install libvirt-dev pkg-config first), and a running libvirtd"
        )
    return libvirt


def _start_event_loop() -> None:
    global _loop_started
    with _loop_lock:
        if _loop_started:
            return
        lv = require_libvirt()
        # libvirt prints every error to stderr by default ("Domain not found" on each
        # lookup of a domain that does not run here); the errors are raised anyway.
        lv.registerErrorHandler(lambda _ctx, _err: None, None)
        lv.virEventRegisterDefaultImpl()
        # A timer keeps the loop turning: with no handle yet it would block for good.
        lv.virEventAddTimeout(1000, lambda _timer, _opaque: None, None)

        def run() -> None:
            while True:
                try:
                    lv.virEventRunDefaultImpl()
                except Exception:  # one bad callback must not end event delivery
                    log.exception("libvirt event loop")

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _loop_started = True


def describe_event(event: int, detail: int) -> str:
    lv = require_libvirt()
    if event == lv.VIR_DOMAIN_EVENT_STOPPED:
        return _STOPPED.get(detail, "stopped")
    if event == lv.VIR_DOMAIN_EVENT_SUSPENDED:
        return _SUSPENDED.get(detail, "paused")
    if event == lv.VIR_DOMAIN_EVENT_CRASHED:
        return "crashed"
    if event == lv.VIR_DOMAIN_EVENT_SHUTDOWN:
        return "shutting down"
    if event == lv.VIR_DOMAIN_EVENT_STARTED:
        return "started"
    if event == lv.VIR_DOMAIN_EVENT_RESUMED:
        return "resumed"
    return f"event {event}/{detail}"


class LibvirtConnection:
    """The connection of one VM module to this node's libvirt: opened on first use,
    opened again after libvirtd restarted; lifecycle events of ``domain`` go to
    ``on_event(description)`` (in libvirt's event thread)."""

    def __init__(self, uri: str, domain: str, on_event: Callable[[int, int], None],
                 on_agent: Callable[[bool], None] | None = None,
                 on_reboot: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.uri = uri
        self.domain = domain
        self._on_event = on_event
        self._on_agent = on_agent  # the guest agent connected (True) or went away
        self._on_reboot = on_reboot  # the guest rebooted itself (the domain runs on)
        self._conn: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    if self._conn.isAlive():
                        return self._conn
                self._conn = None
            lv = require_libvirt()
            _start_event_loop()
            try:
                conn = lv.open(self.uri)
            except lv.libvirtError as e:
                raise ResourceError(
                    f"libvirt at {self.uri} is not reachable: {e.get_error_message()} "
                    "(is libvirtd running? systemctl start libvirtd)"
                ) from None
            with contextlib.suppress(lv.libvirtError):
                conn.setKeepAlive(5, 3)  # a dead libvirtd is noticed, the next call reopens
            conn.domainEventRegisterAny(None, lv.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._event,
                                        None)  # fmt: skip
            if self._on_agent is not None:
                conn.domainEventRegisterAny(None, lv.VIR_DOMAIN_EVENT_ID_AGENT_LIFECYCLE,
                                            self._agent_event, None)  # fmt: skip
            if self._on_reboot is not None:
                conn.domainEventRegisterAny(None, lv.VIR_DOMAIN_EVENT_ID_REBOOT,
                                            self._reboot_event, None)  # fmt: skip
            self._conn = conn
            return conn

    def _event(self, _conn: Any, dom: Any, event: int, detail: int, _opaque: Any) -> None:
        if dom.name() == self.domain:
            self._on_event(event, detail)

    def _reboot_event(self, _conn: Any, dom: Any, _opaque: Any) -> None:
        if dom.name() == self.domain and self._on_reboot is not None:
            self._on_reboot()

    def _agent_event(self, _conn: Any, dom: Any, state: int, reason: int, _opaque: Any) -> None:
        lv = require_libvirt()
        if dom.name() != self.domain or self._on_agent is None:
            return
        if reason == lv.VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_REASON_DOMAIN_STARTED:
            return  # libvirt's "not connected" as the domain starts: nothing went away
        self._on_agent(state == lv.VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_CONNECTED)

    def lookup(self) -> Any | None:
        """The domain if this node's libvirt has it (running, or defined), else None."""
        lv = require_libvirt()
        try:
            return self.get().lookupByName(self.domain)
        except lv.libvirtError as e:
            if e.get_error_code() == lv.VIR_ERR_NO_DOMAIN:
                return None
            raise ResourceError(f"libvirt at {self.uri}: {e.get_error_message()}") from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None
