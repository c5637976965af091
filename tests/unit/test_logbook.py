"""The module log's file (node_agent/engine/logbook.py): reloaded by a restarted agent with
its seq going on, whatever a SIGKILL left at its end, and bounded by rotation."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node_agent.core.states import Readiness, State
from node_agent.core.transitions import LogRecord
from node_agent.engine.logbook import JOURNAL_FIELDS, LogBook


def _transition(book: LogBook, t: float, new: State, cause: str, who: str = "") -> None:
    message = f"WAIT/NOT_READY -> {new.name}/READY: x\ny"  # a newline inside, too
    book.add_record(LogRecord(t, "web", "INFO", message, cause, who, State.WAIT, new,
                              Readiness.NOT_READY, Readiness.READY))  # fmt: skip


def _view(book: LogBook) -> list[tuple]:
    return [(e.seq, e.time, e.module, e.level, e.message, e.cause, e.who, e.new_state,
             e.new_readiness) for e in book.query(limit=100000)]  # fmt: skip


def test_a_restarted_book_has_the_old_entries_and_goes_on_numbering(tmp_path: Path) -> None:
    path = tmp_path / "module-log.jsonl"
    book = LogBook("node1", path)
    book.add("INFO", "agent node1 started")
    _transition(book, 1000.25, State.PRIM, "swap", "CN=admin")
    book.add("ERROR", "résumé: ünïcode", "web", "resource")
    before = _view(book)
    book.close()
    again = LogBook("node1", path)
    assert _view(again) == before
    assert again.query("web", 10)[0].old_readiness == Readiness.NOT_READY.value
    assert again.add("INFO", "agent node1 started").seq == 4
    again.close()
    assert [e.seq for e in LogBook("node1", path).query(limit=10)] == [1, 2, 3, 4]


def test_lines_of_an_older_format_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "module-log.jsonl"
    path.write_text("2024-01-01T00:00:00 INFO    web: old text line\n")
    book = LogBook("node1", path)
    assert book.query() == [] and book.add("INFO", "new").seq == 1


@settings(max_examples=40, deadline=None)
@given(count=st.integers(1, 12), data=st.data())
def test_a_torn_end_loses_only_the_torn_entry(count: int, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "module-log.jsonl"
        book = LogBook("node1", path)
        for i in range(count):
            _transition(book, 100.0 + i, State.PRIM, f"cause{i}")
        full = _view(book)
        book.close()
        raw = path.read_bytes()
        cut = data.draw(st.integers(0, len(raw)))
        os.truncate(path, cut)
        torn = LogBook("node1", path)
        kept = _view(torn)
        assert kept == full[: raw[:cut].count(b"\n")]  # every whole line, nothing torn
        torn.add("WARNING", "after the crash", "web")
        torn.close()
        # The new entry is a line of its own: a third start sees it and all that was kept.
        third = _view(LogBook("node1", path))
        assert third[:-1] == kept and third[-1][4] == "after the crash"


def test_the_files_are_bounded_and_the_newest_entries_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "module-log.jsonl"
    book = LogBook("node1", path, capacity=20, max_file_bytes=4000)
    for i in range(300):
        book.add("INFO", f"entry {i}", "web")
    book.close()
    old = path.with_name(path.name + ".1")
    assert path.stat().st_size < 4000 + 500 and old.stat().st_size < 4000 + 500
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name, old.name]
    again = LogBook("node1", path, capacity=20, max_file_bytes=4000)
    assert [e.seq for e in again.query(limit=1000)] == list(range(281, 301))
    assert again.add("INFO", "next").seq == 301


def test_each_entry_is_logged_once_with_its_journal_fields(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "module-log.jsonl"
    with caplog.at_level(logging.DEBUG, logger="mirrorpair.log"):
        book = LogBook("node1", path)
        _transition(book, 5.0, State.SECOND, "peer-primary", "CN=op")
        book.close()
        LogBook("node1", path).close()  # a reload logs nothing again
    [rec] = [r for r in caplog.records if r.name == "mirrorpair.log"]
    assert getattr(rec, JOURNAL_FIELDS) == {
        "MODULE": "web", "STATE": "SECOND", "CAUSE": "peer-primary", "WHO": "CN=op"
    }  # fmt: skip
    assert rec.getMessage().startswith("web: WAIT/NOT_READY -> SECOND/READY")
    assert rec.getMessage().endswith("[peer-primary by CN=op]")
