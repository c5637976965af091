"""What the agent tells systemd, and when (the systemd notify protocol, issue 14).

Pure: the environment systemd gives, the ``STATUS=`` line made of a node's status, and
``NotifyPlan``, which turns the agent's facts at a moment into the lines to send then.
The socket and the event-loop callbacks are ``node_agent.host.sd_notify``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from protos import mirrorpair_pb2 as pb

NOTIFY_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
STATUS_MAX = 240  # characters: `systemctl status` shows one line
STATUS_EVERY_S = 1.0  # at most one STATUS= a second (a resync's progress moves often)


@dataclass(frozen=True)
class ServiceEnv:
    """What systemd asked of this process."""

    notify_socket: str = ""  # a path, or "@name" for an abstract socket; "" = not under systemd
    watchdog_s: float | None = None  # WatchdogSec for this process (pets at half of it)
    problems: tuple[str, ...] = ()  # values that were ignored, for the log


def read_service_env(environ: Mapping[str, str], pid: int) -> ServiceEnv:
    """NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID as sd_notify(3) reads them: the
    watchdog is ours only if WATCHDOG_PID is unset or names this process."""
    problems: list[str] = []
    sock = environ.get("NOTIFY_SOCKET", "")
    if sock and not (sock.startswith("/") or (sock.startswith("@") and len(sock) > 1)):
        problems.append(f"NOTIFY_SOCKET={sock!r} is neither an absolute path nor @name")
        sock = ""
    watchdog: float | None = None
    usec = environ.get("WATCHDOG_USEC", "").strip()
    if usec:
        try:
            value = int(usec)
        except ValueError:
            value = 0
        if value > 0:
            watchdog = value / 1e6
        else:
            problems.append(f"WATCHDOG_USEC={usec!r} is not a positive number of microseconds")
    owner = environ.get("WATCHDOG_PID", "").strip()
    if watchdog is not None and owner and owner != str(pid):
        watchdog = None  # the watchdog is another process's (a child inherited the variable)
    if watchdog is not None and not sock:
        problems.append("WATCHDOG_USEC is set but NOTIFY_SOCKET is not: no watchdog")
        watchdog = None
    return ServiceEnv(sock, watchdog, tuple(problems))


# ----- the STATUS= line -------------------------------------------------------------------
def _state(value: int) -> str:
    name = pb.ModuleState.Name(value) if value in pb.ModuleState.values() else "STATE_?"
    return name.removeprefix("STATE_")


def module_piece(m: pb.ModuleStatus) -> str:
    """``db SECOND (resync 40%)``: the state, and what is not as it should be."""
    notes: list[str] = []
    if m.split_brain:
        notes.append("split brain")
    if m.readiness == pb.READINESS_NOT_READY:
        notes.append("not ready")
    elif m.readiness == pb.READINESS_TRANSIENT:
        notes.append("transient")
    if m.resync.active:
        total = m.resync.bytes_total
        notes.append(f"resync {min(100, m.resync.bytes_done * 100 // total)}%" if total
                     else "resync")  # fmt: skip
    elif m.degraded:
        notes.append("degraded")
    return f"{m.name} {_state(m.state)}" + (f" ({', '.join(notes)})" if notes else "")


def _notable(m: pb.ModuleStatus) -> bool:
    return module_piece(m) != f"{m.name} {_state(m.state)}"


def status_line(status: pb.NodeStatus, limit: int = STATUS_MAX) -> str:
    """One line for `systemctl status`: each module's state; with many modules, the
    counts per state and then the modules that need a look, as many as fit."""
    if not status.configured:
        who = status.node_id or "not paired"
        return f"{who}: no cluster configuration yet (waiting for the console's set-up)"
    head = f"{status.node_id}: "
    peer = f"; peer {status.peer_id} {'answers' if status.peer_alive else 'silent'}"
    if not status.modules:
        return head + "no modules" + peer
    full = head + ", ".join(module_piece(m) for m in status.modules) + peer
    if len(full) <= limit:
        return full
    counts = Counter(_state(m.state) for m in status.modules)
    summary = f"{len(status.modules)} modules: " + ", ".join(
        f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    notable = [module_piece(m) for m in status.modules if _notable(m)]
    line, shown = head + summary, 0
    for piece in notable:
        rest = len(notable) - shown - 1
        candidate = line + ("; " if shown == 0 else ", ") + piece
        if len(candidate + (f", +{rest} more" if rest else "") + peer) > limit:
            break
        line, shown = candidate, shown + 1
    if shown < len(notable):
        left = len(notable) - shown
        line += f", +{left} more" if shown else f"; {left} need a look"
    line += peer
    return line if len(line) <= limit else line[: limit - 1] + "…"


# ----- what to send when ------------------------------------------------------------------
@dataclass
class NotifyPlan:
    """Decides the notify lines; ``tick`` is called from the agent's event loop.

    READY=1 once, when the API listens and the heartbeats run; STATUS= when the line
    changed (at most every ``status_every_s``); WATCHDOG=1 every half WatchdogSec;
    STOPPING=1 once, when a clean stop begins (no READY=1 after it).

    ``tick`` only decides; ``sent`` commits what reached systemd. A datagram the
    non-blocking socket dropped (EAGAIN, ECONNREFUSED during a daemon-reexec) is decided
    again on the next tick: a lost READY=1 would have systemd kill the start after
    TimeoutStartSec. (A lost pet is not repeated early: the next one is due within half
    WatchdogSec.)
    """

    watchdog_s: float | None = None
    status_every_s: float = STATUS_EVERY_S
    ready_sent: bool = False
    stopping_sent: bool = False
    sent_status: str = ""
    _status_at: float | None = None
    _status_out: str = ""  # the status of the last STATUS= line ticked out
    _next_pet: float | None = None

    @property
    def pet_every_s(self) -> float | None:
        return None if self.watchdog_s is None else self.watchdog_s / 2

    def tick_every_s(self, default: float = 0.5) -> float:
        """How often the driver should call tick: often enough for pets and STATUS."""
        pet = self.pet_every_s
        return min(default, pet) if pet is not None else default

    def tick(self, now: float, *, up: bool, status: str, stopping: bool = False) -> list[str]:
        """The lines to send now; call ``sent`` with them once they went."""
        out: list[str] = []
        if stopping and not self.stopping_sent:
            out.append("STOPPING=1")
        if up and not self.ready_sent and not stopping:
            out.append("READY=1")
        status_free = self._status_at is None or now - self._status_at >= self.status_every_s
        if status and status != self.sent_status and (status_free or out):
            self._status_at, self._status_out = now, status  # paced by attempts
            out.append("STATUS=" + status.replace("\n", " "))
        pet = self.pet_every_s
        if pet is not None and (self._next_pet is None or now >= self._next_pet):
            self._next_pet = now + pet
            out.append("WATCHDOG=1")
        return out

    def sent(self, lines: list[str]) -> None:
        """``lines`` (from ``tick``) reached systemd: READY, STOPPING, STATUS are done."""
        for line in lines:
            if line == "READY=1":
                self.ready_sent = True
            elif line == "STOPPING=1":
                self.stopping_sent = True
            elif line.startswith("STATUS="):
                self.sent_status = self._status_out
