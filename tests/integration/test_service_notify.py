"""The agent as a systemd Type=notify service (issue 14): real agents report READY=1 once
their API answers, STATUS= with their modules, WATCHDOG=1 from the event loop (a blocked
loop stops it) and STOPPING=1 on a clean stop, to a real notify socket."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from pathlib import Path

from node_agent.cli.client import AgentClientError
from node_agent.host.agent_host import AgentHost
from node_agent.host.service import AgentService
from node_agent.host.service_plan import ServiceEnv
from tests.integration.agents import LocalCluster
from tests.notify_listener import Notice, NotifyListener


def test_agents_notify_ready_status_watchdog_stopping(tmp_path: Path, monkeypatch) -> None:
    with NotifyListener() as listener:
        monkeypatch.setenv("NOTIFY_SOCKET", listener.name)
        monkeypatch.setenv("WATCHDOG_USEC", "600000")  # a pet every 0.3 s
        lc = LocalCluster(tmp_path, modules=("web",), log_level="INFO")
        answered_at_ready: dict[int, object] = {}

        def on_ready(notice: Notice) -> None:
            # At READY=1 the API must answer already: ask at once.
            if "READY=1" not in notice.lines:
                return
            node = next(n for n, a in lc.agents.items() if a.proc and a.proc.pid == notice.pid)
            try:
                with lc.cluster.client(node, timeout=2.0) as c:
                    answered_at_ready[notice.pid] = c.status().configured
            except AgentClientError as e:
                answered_at_ready[notice.pid] = e

        with lc:
            pids = {n: a.proc.pid for n, a in lc.agents.items() if a.proc is not None}
            listener.wait_for("READY=1 from both agents",
                              lambda: all(p in answered_at_ready for p in pids.values()),
                              each=on_ready)  # fmt: skip
            assert all(v is True for v in answered_at_ready.values()), answered_at_ready

            def pets_after_ready(pid: int) -> int:
                lines = listener.lines(pid)
                return lines[lines.index("READY=1") :].count("WATCHDOG=1")

            listener.wait_for(
                "repeated WATCHDOG=1", lambda: all(pets_after_ready(p) >= 3 for p in pids.values())
            )
            primary, secondary = lc.wait_settled("web")

            def status_has(node: str, text: str) -> bool:
                statuses = [ln for ln in listener.lines(pids[node]) if ln.startswith("STATUS=")]
                return bool(statuses) and text in statuses[-1]

            listener.wait_for("STATUS= with the modules", lambda: (
                status_has(primary, f"{primary}: web PRIM; peer {secondary} answers")
                and status_has(secondary, f"{secondary}: web SECOND; peer {primary} answers")
            ))  # fmt: skip
            # The application the agent started does not inherit the notify socket.
            app_pid = int((tmp_path / primary / "web.pid").read_text())
            environ = Path(f"/proc/{app_pid}/environ").read_bytes().split(b"\0")
            assert not any(v.startswith(b"NOTIFY_SOCKET=") for v in environ)

            lc.stop(secondary)  # SIGTERM: a clean stop
            listener.wait_for("STOPPING=1", lambda: "STOPPING=1" in listener.lines(pids[secondary]))
            listener.wait_for("STATUS= of the peer gone",
                              lambda: status_has(primary, f"peer {secondary} silent"))  # fmt: skip
        listener.read_all()
        for pid in pids.values():
            assert listener.lines(pid).count("READY=1") == 1
        assert {n.pid for n in listener.notices} <= set(pids.values())  # only the agents


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_blocked_loop_stops_the_watchdog_pets(tmp_path: Path) -> None:
    """A real (unconfigured) agent host in this process: its loop is blocked by a call
    scheduled on it, and the pets stop until it returns."""
    with NotifyListener() as listener:
        port = _free_port()
        service = AgentService(ServiceEnv(listener.name, watchdog_s=0.2), subreaper=False)
        host = AgentHost(config_path=tmp_path / "cluster.toml", state_dir=tmp_path / "state",
                         node_id="", listen=f"127.0.0.1:{port}", mdns=False)  # fmt: skip
        release, blocked = threading.Event(), threading.Event()
        seen: dict[str, list[Notice]] = {}

        def watch_block() -> None:  # in a thread: the loop is blocked meanwhile
            blocked.wait(30)
            seen["before"] = listener.read_all()  # all sent before the block is queued
            release.wait(1.0)  # ten pet periods of a blocked loop
            seen["during"] = listener.read_all()
            release.set()

        def block() -> None:
            blocked.set()
            release.wait(30)  # the stuck call

        async def scenario() -> None:
            service.begin()
            await host.start()
            service.follow(host)
            task = asyncio.get_running_loop().create_task(host.run())
            try:
                while "READY=1" not in listener.lines():
                    await asyncio.sleep(0.02)
                    listener.read_all()
                with socket.create_connection(("127.0.0.1", port), timeout=2):
                    pass  # the API listens

                def statuses() -> list[str]:
                    return [ln for ln in listener.lines() if ln.startswith("STATUS=")]

                while listener.lines().count("WATCHDOG=1") < 3 or (
                    "no cluster configuration" not in statuses()[-1]
                ):
                    await asyncio.sleep(0.02)
                    listener.read_all()
                watcher = threading.Thread(target=watch_block)
                watcher.start()
                asyncio.get_running_loop().call_soon(block)
                await asyncio.sleep(0.05)  # the loop runs again only after the block
                watcher.join()
                pets = len([n for n in listener.notices if "WATCHDOG=1" in n.lines])
                while len([n for n in listener.read_all() if "WATCHDOG=1" in n.lines]) == 0:
                    await asyncio.sleep(0.02)  # and petting resumes
                assert pets > 0
            finally:
                service.stopping()
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await service.close()

        asyncio.run(scenario())
        assert blocked.is_set() and "during" in seen
        assert not [n for n in seen["during"] if "WATCHDOG=1" in n.lines], seen["during"]
        listener.read_all()
        assert listener.lines()[-1] != "READY=1" and "STOPPING=1" in listener.lines()
