"""NodeEngine.reconfigure on two real engines (real UDP heartbeats, real app processes,
tests/integration/engine_pair.py): only what changed moves, the version each node runs is
in its heartbeat and status, and a mismatch is shown but causes no failover."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from node_agent.config.load import parse_config
from node_agent.config.model import ClusterConfig
from tests.integration.engine_pair import APP, EnginePair, cluster_config


def run(coro) -> None:
    asyncio.run(asyncio.wait_for(coro, 90))


def pid_of(root: Path, node: str, module: str) -> int | None:
    try:
        pid = int((root / node / "modules" / module / "pid").read_text())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None


def bump(cfg: ClusterConfig, n: int, text: str | None = None) -> ClusterConfig:
    """``text`` (default: cfg's) as version ``n``."""
    text = cfg.source_text if text is None else text
    lines = [ln for ln in text.splitlines() if not ln.startswith("version = ")]
    body = "\n".join(lines).replace("[cluster]\n", f"[cluster]\nversion = {n}\n", 1)
    return parse_config(body + "\n", "engine-test")


def module(name: str, maxloop: int = 2) -> str:
    app = APP.format(maxloop=maxloop, check="kill -0 $(cat pid)")
    return app.replace('name = "web"', f'name = "{name}"')


def both(e1, e2, name: str) -> bool:
    return states(e1, name) == ("PRIM", "READY") and states(e2, name) == ("SECOND", "READY")


def states(engine, name: str) -> tuple[str, str] | None:
    from protos import mirrorpair_pb2 as pb

    for m in engine.status().modules:
        if m.name == name:
            return pb.ModuleState.Name(m.state)[6:], pb.Readiness.Name(m.readiness)[10:]
    return None


def test_add_change_remove_moves_only_what_changed(tmp_path: Path) -> None:
    async def scenario() -> None:
        base = cluster_config(tmp_path, timeout_ms=2000)
        pair = EnginePair(base)
        e1, e2 = pair.start("node1"), pair.start("node2")
        try:
            await pair.wait_roles("node1", "node2", "PRIM/SECOND")
            web = pid_of(tmp_path, "node1", "web")
            assert web is not None
            st = e1.status()
            assert (st.config_version, st.peer_config_version, st.configured) == (1, 1, True)

            # v2: a module added. Only node1 commits first: a visible mismatch, no failover.
            v2 = bump(base, 2, base.source_text + module("db"))
            assert await e1.reconfigure(v2) == ["add module db"]
            await pair.wait(lambda: e2.status().peer_config_version == 2, "node2 hears v2")
            st2 = e2.status()
            assert (st2.config_version, st2.peer_config_version) == (1, 2)
            assert states(e1, "web") == ("PRIM", "READY")
            assert states(e2, "web") == ("SECOND", "READY")
            assert await e2.reconfigure(v2) == ["add module db"]
            await pair.wait(lambda: both(e1, e2, "db"), "db PRIM/SECOND")
            assert pid_of(tmp_path, "node1", "web") == web  # untouched: not restarted
            assert [m.name for m in e1.status().modules] == ["web", "db"]

            # v3: db's maxloop changes (restarted), web untouched; both commit at once.
            db = pid_of(tmp_path, "node1", "db")
            v3 = bump(v2, 3, base.source_text + module("db", maxloop=3))
            out = await asyncio.gather(e1.reconfigure(v3), e2.reconfigure(v3))
            assert out == [["restart module db (maxloop)"]] * 2
            await pair.wait(lambda: both(e1, e2, "db"), "db back PRIM/SECOND")
            assert pid_of(tmp_path, "node1", "db") not in (None, db)
            assert pid_of(tmp_path, "node1", "web") == web
            assert pid_of(tmp_path, "node2", "db") is None  # never handed over to node2

            # v4: web removed: stopped, gone from status and heartbeat; db untouched.
            db = pid_of(tmp_path, "node1", "db")
            head = base.source_text.split("[[module]]")[0]
            v4 = bump(v3, 4, head + module("db", maxloop=3))
            out = await asyncio.gather(e1.reconfigure(v4), e2.reconfigure(v4))
            assert out == [["remove module web"]] * 2
            assert pid_of(tmp_path, "node1", "web") is None
            assert [m.name for m in e1.status().modules] == ["db"]
            assert pid_of(tmp_path, "node1", "db") == db
            assert e1.status().config_version == 4
        finally:
            await pair.close()

    run(scenario())


def test_a_change_that_needs_a_restart_is_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        base = cluster_config(tmp_path)
        pair = EnginePair(base)
        e1 = pair.start("node1")
        try:
            bad = bump(base, 2, base.source_text.replace('name = "enginetest"', 'name = "other"'))
            with pytest.raises(
                ValueError, match="cluster.name: cannot change while the agents run"
            ):
                await e1.reconfigure(bad)
            assert e1.config.version == 1
        finally:
            await pair.close()

    run(scenario())


def test_pulse_and_timeout_change_live(tmp_path: Path) -> None:
    async def scenario() -> None:
        base = cluster_config(tmp_path)  # pulse 100 ms, timeout 1000 ms
        pair = EnginePair(base)
        e1, e2 = pair.start("node1"), pair.start("node2")
        try:
            await pair.wait_roles("node1", "node2", "PRIM/SECOND")
            text = base.source_text.replace("pulse_ms = 100", "pulse_ms = 200")
            v2 = bump(base, 2, text.replace("timeout_ms = 1000", "timeout_ms = 1500"))
            out = await asyncio.gather(e1.reconfigure(v2), e2.reconfigure(v2))
            assert out == [["change cluster.pulse_ms", "change cluster.timeout_ms"]] * 2
            for e in (e1, e2):
                assert e.sender.pulse.pulse_s == 0.2 and e.liveness.timeout_s == 1.5
                assert e.modules["web"].machine.policy.detection_timeout_s == 1.5
            await asyncio.sleep(2.0)  # still paired at the new pace
            assert both(e1, e2, "web") and e1.status().peer_config_version == 2
        finally:
            await pair.close()

    run(scenario())
