"""Where the agent logs (node_agent/logging_setup.py): the decision, the journal fields,
and the handler against a real datagram socket."""

from __future__ import annotations

import logging
import re
import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node_agent.journal import DEFAULT_SOCKET, JournalSocket, decode
from node_agent.logging_setup import (
    JOURNAL_FIELDS,
    JournalHandler,
    LogPlan,
    StderrInfo,
    decide,
    record_fields,
    syslog_priority,
)

FILE = "/var/lib/mirrorpair/log/agent.log"
TTY = StderrInfo((5, 7), is_tty=True)
CAPTURED = StderrInfo((5, 9), captured=True)  # a file or a pipe
DEVNULL = StderrInfo((5, 4))  # neither: /dev/null


def plan(env: dict[str, str], stderr: StderrInfo, socket_exists: bool = True,
         log_file: str = "") -> LogPlan:  # fmt: skip
    return decide(env, stderr, socket_exists, log_file, FILE)


def test_journal_stream_naming_our_stderr_means_the_journal() -> None:
    p = plan({"JOURNAL_STREAM": "5:9", "INVOCATION_ID": "x"}, CAPTURED, log_file="/x.log")
    assert (p.journal, p.file, p.stderr) == (DEFAULT_SOCKET, "", False)


def test_journal_stream_of_another_file_is_not_the_journal() -> None:
    # Inherited from a unit, but our stderr was redirected since (a child's own log file).
    p = plan({"JOURNAL_STREAM": "5:8", "INVOCATION_ID": "x"}, CAPTURED)
    assert (p.journal, p.file, p.stderr) == ("", FILE, False)
    assert plan({"JOURNAL_STREAM": "junk"}, CAPTURED).journal == ""
    assert plan({"JOURNAL_STREAM": "5:9"}, StderrInfo(None)).journal == ""


def test_a_unit_with_stderr_to_nowhere_uses_the_journal_if_it_exists() -> None:
    assert plan({"INVOCATION_ID": "x"}, DEVNULL).journal == DEFAULT_SOCKET
    assert plan({"INVOCATION_ID": "x"}, DEVNULL, socket_exists=False).journal == ""
    assert plan({"INVOCATION_ID": "x"}, CAPTURED).journal == ""  # StandardError=file:
    assert plan({"INVOCATION_ID": "x"}, TTY).journal == ""
    assert plan({}, DEVNULL).journal == ""


def test_the_socket_and_the_target_from_the_environment() -> None:
    env = {"MIRRORPAIR_JOURNAL_SOCKET": "/tmp/j.sock", "JOURNAL_STREAM": "5:9"}
    assert plan(env, CAPTURED).journal == "/tmp/j.sock"
    # A data plane: stderr is its own file, the agent said "journal".
    p = plan({"MIRRORPAIR_LOG_TARGET": "journal"}, CAPTURED, log_file="-")
    assert (p.journal, p.file, p.stderr) == (DEFAULT_SOCKET, "", False)


def test_outside_systemd_a_file_plus_a_terminal() -> None:
    assert plan({}, TTY) == LogPlan(file=FILE, stderr=True, why="not under systemd")
    assert (plan({}, CAPTURED).file, plan({}, CAPTURED).stderr) == (FILE, False)
    assert plan({}, TTY, log_file="/l/a.log").file == "/l/a.log"
    p = plan({}, CAPTURED, log_file="-")
    assert (p.journal, p.file, p.stderr) == ("", "", True)


def test_priorities() -> None:
    got = [syslog_priority(lv) for lv in (50, 40, 30, 20, 10, 0)]
    assert got == [2, 3, 4, 6, 7, 7]


@given(st.integers(0, 100), st.integers(0, 100))
def test_a_higher_level_never_gets_a_lower_priority(a: int, b: int) -> None:
    if a <= b:
        assert syslog_priority(a) >= syslog_priority(b)


def _record(level: int = logging.WARNING, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("mirrorpair.log", level, "/src/x.py", 42, "web: %s", ("hi",), None,
                            func="step")  # fmt: skip
    rec.__dict__.update(extra)
    return rec


def test_record_fields() -> None:
    rec = _record(
        **{JOURNAL_FIELDS: {"MODULE": "web", "state": "PRIM", "WHO": "", "CAUSE": "swap"}}
    )
    fields = dict(
        record_fields(rec, "web: hi", "mirrorpair-agent", [("NODE", "node1"), ("MODULE", "x")])
    )
    assert fields == {
        "MESSAGE": "web: hi", "PRIORITY": "4", "SYSLOG_IDENTIFIER": "mirrorpair-agent",
        "CODE_FILE": "/src/x.py", "CODE_LINE": "42", "CODE_FUNC": "step",
        "LOGGER": "mirrorpair.log", "NODE": "node1", "MODULE": "web", "STATE": "PRIM",
        "CAUSE": "swap",
    }  # fmt: skip


@pytest.fixture
def journal(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = str(tmp_path / "j.sock")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    rx.settimeout(5)
    yield rx, path
    rx.close()


def test_the_handler_sends_message_without_time_and_the_traceback(journal, capsys) -> None:  # type: ignore[no-untyped-def]
    rx, path = journal
    handler = JournalHandler(JournalSocket(path), "mirrorpair-agent", [("NODE", "node2")])
    logger = logging.getLogger("test.journal.handler")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logger.exception("it failed: %d", 7)
    finally:
        logger.removeHandler(handler)
        handler.close()
    fields = dict(decode(rx.recv(65536)))
    message = fields["MESSAGE"].decode()
    assert message.startswith("it failed: 7\nTraceback") and "RuntimeError: boom" in message
    assert not re.search(r"\d\d:\d\d:\d\d", message)
    assert (fields["PRIORITY"], fields["NODE"], fields["CODE_FUNC"]) == (
        b"3",
        b"node2",
        b"test_the_handler_sends_message_without_time_and_the_traceback",
    )
    assert capsys.readouterr().err == ""  # nothing twice


def test_without_a_journal_the_line_goes_to_stderr(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    handler = JournalHandler(JournalSocket(str(tmp_path / "gone.sock")), "mirrorpair-agent")
    handler.handle(_record(logging.ERROR))
    handler.close()
    assert capsys.readouterr().err == "ERROR mirrorpair.log: web: hi\n"
