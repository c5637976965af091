"""Where the agent's and its data planes' Python logging goes (docs/logs.md).

- Under systemd: to journald, through its native protocol (node_agent/journal.py), with
  fields (PRIORITY, CODE_*, and MODULE/STATE/CAUSE/WHO for the module log's entries).
  Only there: systemd forwards stderr to the journal too, so a line also written to stderr
  would appear twice; and journald stamps each entry, so the message carries no time.
- Otherwise: a rotating file (``--log-file``, default STATE_DIR/log/agent.log; 10 MiB, 5
  old files kept), plus stderr when it is a terminal. ``--log-file -``: stderr alone, for a
  supervisor (or a test harness) that captures it.

``decide`` and ``record_fields`` are pure; ``setup_logging`` installs the handlers.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from node_agent.journal import DEFAULT_SOCKET, JournalSocket, encode, field_name

ENV_TARGET = "MIRRORPAIR_LOG_TARGET"  # "journal": the agent sets it for its data planes
ENV_SOCKET = "MIRRORPAIR_JOURNAL_SOCKET"  # another journal socket (tests)
ENV_FILE = "MIRRORPAIR_LOG_FILE"  # --log-file's default
JOURNAL_FIELDS = "journal_fields"  # a LogRecord attribute (``extra=``): more journal fields
FILE_MAX_BYTES = 10 << 20
FILE_BACKUPS = 5


@dataclass(frozen=True)
class StderrInfo:
    """What this process's stderr is."""

    dev_ino: tuple[int, int] | None  # None: closed
    is_tty: bool = False
    captured: bool = False  # a regular file or a pipe: someone keeps what is written


@dataclass(frozen=True)
class LogPlan:
    journal: str = ""  # the journal socket; "" = not the journal
    file: str = ""  # the rotating file; "" = none
    stderr: bool = False
    why: str = ""  # said once at start, so the operator knows where to look


def journal_socket(env: Mapping[str, str]) -> str:
    return env.get(ENV_SOCKET) or DEFAULT_SOCKET


def _stream_id(value: str) -> tuple[int, int] | None:
    dev, _, ino = value.partition(":")
    try:
        return int(dev), int(ino)
    except ValueError:
        return None


def decide(
    env: Mapping[str, str],
    stderr: StderrInfo,
    socket_exists: bool,
    log_file: str,
    default_file: str,
) -> LogPlan:
    """Journal under systemd, else ``log_file`` (or ``default_file``; "-" = stderr only).

    Under systemd = JOURNAL_STREAM names our stderr (systemd connected it to the journal;
    a stderr redirected since, e.g. a child's output file, is not), or the unit sends
    stderr nowhere (no JOURNAL_STREAM, INVOCATION_ID set, stderr neither a terminal nor
    captured) and the journal socket exists. ``socket_exists``: of ``journal_socket(env)``.
    """
    sock = journal_socket(env)
    if env.get(ENV_TARGET) == "journal":
        return LogPlan(journal=sock, why=f"{ENV_TARGET}=journal")
    stream = env.get("JOURNAL_STREAM", "")
    if stream:
        if stderr.dev_ino is not None and _stream_id(stream) == stderr.dev_ino:
            return LogPlan(journal=sock, why="JOURNAL_STREAM is this process's stderr")
    elif env.get("INVOCATION_ID") and not (stderr.is_tty or stderr.captured) and socket_exists:
        return LogPlan(journal=sock, why="INVOCATION_ID set and the journal socket exists")
    path = log_file or default_file
    if path == "-":
        return LogPlan(stderr=True, why="--log-file -")
    return LogPlan(file=path, stderr=stderr.is_tty, why="not under systemd")


def syslog_priority(levelno: int) -> int:
    """logging level -> syslog priority (CRITICAL 2, ERROR 3, WARNING 4, INFO 6, DEBUG 7)."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def record_fields(
    record: logging.LogRecord,
    message: str,
    identifier: str,
    static: Sequence[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    """The journal fields of one record: MESSAGE (no time: journald stamps it), PRIORITY,
    SYSLOG_IDENTIFIER, CODE_FILE/LINE/FUNC, LOGGER, then ``static`` (e.g. NODE) and the
    record's own JOURNAL_FIELDS (e.g. MODULE, STATE, CAUSE, WHO), the later winning."""
    extra: dict[str, str] = dict(static)
    own = getattr(record, JOURNAL_FIELDS, None)
    if isinstance(own, Mapping):
        extra.update((field_name(str(k)), str(v)) for k, v in own.items() if v not in ("", None))
    fields = [
        ("MESSAGE", message),
        ("PRIORITY", str(syslog_priority(record.levelno))),
        ("SYSLOG_IDENTIFIER", identifier),
        ("CODE_FILE", record.pathname),
        ("CODE_LINE", str(record.lineno)),
        ("CODE_FUNC", record.funcName or ""),
        ("LOGGER", record.name),
    ]
    taken = {k for k, _ in fields}
    return fields + [(k, v) for k, v in extra.items() if k not in taken]


class JournalHandler(logging.Handler):
    """Python logging -> journald. If journald does not take an entry (stopped,
    restarting), the line goes to stderr, which systemd also collects, rather than nowhere."""

    def __init__(
        self, sock: JournalSocket, identifier: str, static: Sequence[tuple[str, str]] = ()
    ) -> None:
        super().__init__()
        self.sock, self.identifier, self.static = sock, identifier, tuple(static)
        self.setFormatter(logging.Formatter("%(message)s"))  # + traceback, never a time

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            data = encode(record_fields(record, message, self.identifier, self.static))
        except Exception:
            self.handleError(record)
            return
        try:
            self.sock.send(data)
        except OSError:
            try:
                sys.stderr.write(f"{record.levelname} {record.name}: {message}\n")
                sys.stderr.flush()
            except (OSError, ValueError):
                pass

    def close(self) -> None:
        self.sock.close()
        super().close()


def stderr_info() -> StderrInfo:
    try:
        st = os.fstat(2)
    except OSError:
        return StderrInfo(None)
    import stat

    captured = stat.S_ISREG(st.st_mode) or stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode)
    return StderrInfo((st.st_dev, st.st_ino), os.isatty(2), captured)


def setup_logging(
    level: int,
    *,
    identifier: str,
    log_file: str = "-",
    default_file: str = "-",
    static: Sequence[tuple[str, str]] = (),
    text_prefix: str = "",
    env: Mapping[str, str] | None = None,
    for_children: bool = False,
) -> LogPlan:
    """Install the handlers ``decide`` chooses on the root logger; the plan.

    ``text_prefix`` goes after the time in file and stderr lines (e.g. the node id).
    ``for_children``: when the journal is chosen, say so in the environment, so the
    processes this one starts (the data planes, whose stderr is a file) use it too."""
    env = os.environ if env is None else env
    sock_path = journal_socket(env)
    plan = decide(env, stderr_info(), os.path.exists(sock_path), log_file, default_file)
    root = logging.getLogger()
    root.setLevel(level)
    text = logging.Formatter(f"%(asctime)s {text_prefix}%(levelname)s %(name)s: %(message)s")
    problem = ""
    if plan.journal:
        root.addHandler(JournalHandler(JournalSocket(plan.journal), identifier, static))
        if for_children:
            os.environ[ENV_TARGET] = "journal"
    if plan.file:
        try:
            Path(plan.file).parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            handler: logging.Handler = logging.handlers.RotatingFileHandler(
                plan.file, maxBytes=FILE_MAX_BYTES, backupCount=FILE_BACKUPS, encoding="utf-8"
            )
            handler.setFormatter(text)
            root.addHandler(handler)
        except OSError as e:
            problem = f"cannot write the log file {plan.file} ({e}); logging to stderr"
            plan = LogPlan(stderr=True, why=problem)
    if plan.stderr:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(text)
        root.addHandler(handler)
    if problem:
        logging.getLogger("mirrorpair").warning("%s", problem)
    return plan


def describe(plan: LogPlan) -> str:
    where = [f"the journal ({plan.journal})"] if plan.journal else []
    where += [plan.file] if plan.file else []
    where += ["stderr"] if plan.stderr else []
    return " and ".join(where)


def setup_agent_logging(level_name: str, node: str, log_file: str, state_dir: str) -> LogPlan:
    """mirrorpair-agent's logging: identifier mirrorpair-agent, field NODE."""
    plan = setup_logging(
        getattr(logging, level_name.upper(), logging.INFO),
        identifier="mirrorpair-agent",
        log_file=log_file,
        default_file=str(Path(state_dir) / "log" / "agent.log"),
        static=[("NODE", node)] if node else [],
        text_prefix=f"{node or '?'} ",
        for_children=True,
    )
    logging.getLogger("mirrorpair").info("logging to %s (%s)", describe(plan), plan.why)
    return plan
