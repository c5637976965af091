"""Command flows without agents: what is asked, how often, and what is refused."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QWidget

from console.client.events import NodeSnapshot, NodeUnreachable
from console.settings.clusters import make_entry
from console.settings.secrets import SecretStore
from console.ui.confirm import Confirmer
from console.ui.flows import CommandFlows
from console.ui.session import ClusterSession
from protos import mirrorpair_pb2 as pb
from tests.console.builders import module, node


def make(tmp_path: Path, qtbot: Any) -> tuple[ClusterSession, CommandFlows, Confirmer]:
    entry = make_entry(
        "c",
        "127.0.0.1:1",
        "127.0.0.2:1",
        str(tmp_path / "ca.pem"),
        str(tmp_path / "a.pem"),
        str(tmp_path / "a.key"),
    )
    session = ClusterSession(entry, SecretStore())
    parent = QWidget()
    qtbot.addWidget(parent)
    confirmer = Confirmer(parent)
    flows = CommandFlows(session, confirmer)
    now = time.time()
    session.handle_event(NodeSnapshot("c", "node1", node("node1", module()), now))
    session.handle_event(NodeSnapshot("c", "node2", node("node2", module(state="SECOND")), now))
    return session, flows, confirmer


def test_prim_asks_twice_and_a_second_no_sends_nothing(
    qtbot: Any, aio: Any, tmp_path: Path
) -> None:
    session, flows, confirmer = make(tmp_path, qtbot)
    flows.request_command("web", pb.COMMAND_PRIM, "node2")
    first = confirmer.current
    assert first is not None and "Force primary web on node2" in first.windowTitle()
    confirmer.answer(True)
    second = confirmer.current
    assert second is not None and second is not first and "Really" in second.windowTitle()
    assert session.ops.latest("web", time.time()) is None  # not sent yet
    confirmer.answer(False)
    assert confirmer.current is None and session.ops.latest("web", time.time()) is None


def test_forcestop_twice_yes_sends_it(qtbot: Any, aio: Any, tmp_path: Path) -> None:
    session, flows, confirmer = make(tmp_path, qtbot)
    flows.request_command("web", pb.COMMAND_FORCESTOP, "node1")
    confirmer.answer(True)
    confirmer.answer(True)
    op = session.ops.latest("web", time.time())
    assert op is not None and op.command == pb.COMMAND_FORCESTOP and op.node == "node1"
    # The client is not started: the command cannot be delivered, and the card says so.
    qtbot.waitUntil(lambda: not session.ops.get(op.op_id).active, timeout=5000)  # type: ignore[union-attr]
    done = session.ops.get(op.op_id)
    assert done is not None and "not connected" in done.message


def test_start_asks_once(qtbot: Any, aio: Any, tmp_path: Path) -> None:
    session, flows, confirmer = make(tmp_path, qtbot)
    flows.request_command("web", pb.COMMAND_RESTART, "node1")
    confirmer.answer(True)
    assert confirmer.current is None
    assert session.ops.latest("web", time.time()) is not None


def test_commands_on_an_unreachable_node_are_refused(qtbot: Any, aio: Any, tmp_path: Path) -> None:
    session, flows, confirmer = make(tmp_path, qtbot)
    session.handle_event(NodeUnreachable("c", "node2", "connection refused", time.time()))
    reasons: list[str] = []
    flows.refused.connect(reasons.append)
    flows.request_command("web", pb.COMMAND_STOP, "node2")
    flows.request_swap("web")
    assert confirmer.current is None
    assert reasons == [
        "node2 is not answering: connection refused",
        "node2 is not answering (connection refused)",
    ]
    holder = QWidget()
    menu = flows.build_menu("web", holder)
    enabled = {a.text(): a.isEnabled() for a in menu.actions() if a.text()}
    assert enabled["Swap to node2"] is False


def test_the_menu_offers_a_survivor_only_in_split_brain(
    qtbot: Any, aio: Any, tmp_path: Path
) -> None:
    session, flows, _ = make(tmp_path, qtbot)
    holder = QWidget()
    qtbot.addWidget(holder)

    def keep_actions() -> list[str]:
        menu = flows.build_menu("web", holder)
        return [a.text() for a in menu.actions() if a.text().startswith("Keep ")]

    assert keep_actions() == []
    now = time.time()
    session.handle_event(
        NodeSnapshot("c", "node1", node("node1", module(state="ALONE", split_brain=True)), now)
    )
    waiting = module(state="WAIT", readiness="NotReady", split_brain=True)
    session.handle_event(NodeSnapshot("c", "node2", node("node2", waiting), now))
    assert keep_actions() == ["Keep node1's copy…", "Keep node2's copy…"]
