"""What the alerts said survives an agent restart of the same boot (alerts/memory.py):
the dispatcher keeps the open episodes in DATA/alerts-sent.json and takes them up."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from node_agent.alerts import memory
from node_agent.alerts.dispatcher import AlertDispatcher
from node_agent.config.load import parse_config
from node_agent.config.model import AlertsConfig
from node_agent.core.states import Readiness, State
from node_agent.core.transitions import LogRecord
from node_agent.engine.logbook import LogBook
from tests.unit.test_config import BASE


def record(t: float, old: State, new: State, ready: Readiness, cause: str) -> LogRecord:
    msg = f"{old.name}/X -> {new.name}/{ready.name}: reason {cause}"
    return LogRecord(t, "web", "INFO", msg, cause, "", old, new, Readiness.READY, ready)


def dispatcher(data_dir: Path, boot: str) -> AlertDispatcher:
    cfg = dataclasses.replace(parse_config(BASE), alerts=AlertsConfig(settle_s=10))
    return AlertDispatcher(lambda: cfg, "node2", "node1", LogBook("node2", None),
                           data_dir=data_dir, boot_id=boot)  # fmt: skip


def test_a_restarted_agent_does_not_send_degraded_again_for_a_module_still_alone(
    tmp_path: Path,
) -> None:
    first = dispatcher(tmp_path, "boot-1")
    first.observe(record(100, State.STOP, State.SECOND, Readiness.READY, "peer-primary"))
    first.observe(record(101, State.SECOND, State.ALONE, Readiness.READY, "peer-lost"))
    assert memory.load(tmp_path, "boot-1") == {"web": (["failover"], [])}

    again = dispatcher(tmp_path, "boot-1")  # SIGUSR2 / crash: the same boot
    again.observe(record(200, State.STOP, State.ALONE, Readiness.READY, "adopted"))
    assert again.policy.due(200 + 60) == []
    fresh = dispatcher(tmp_path, "boot-2")  # after a reboot: everything anew
    fresh.observe(record(200, State.STOP, State.ALONE, Readiness.READY, "adopted"))
    assert [a.kind.value for a in fresh.policy.due(200 + 60)] == ["degraded"]


def test_a_torn_or_foreign_file_is_ignored(tmp_path: Path) -> None:
    (tmp_path / memory.RECORD).write_text('{"boot_id": "b", "modules": {"web": ')
    assert memory.load(tmp_path, "b") == {}
    (tmp_path / memory.RECORD).write_text('["not", "ours"]')
    assert memory.load(tmp_path, "b") == {}
    memory.save(tmp_path, "b", {"web": (["degraded"], [5.0])})
    assert memory.load(tmp_path, "b") == {"web": (["degraded"], [5.0])}
    assert memory.load(tmp_path, None) == {}
