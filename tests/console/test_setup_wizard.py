"""The setup wizard's pages over the flow, driven by their widgets' object names with the
in-memory backend: every page, its errors shown on the page, Next disabled while the
servers are asked, and a refused apply that keeps the wizard open."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from console.ui.setup_wizard import SetupWizard
from tests.console.setup_fake import two_servers
from tests.console.wizard_drive import drive


def test_wizard_through_every_page(qtbot: Any, run: Callable[..., Any]) -> None:
    backend = two_servers()
    backend.delay = 0.05  # each step takes a moment: Next must wait for it
    backend.unreachable["10.9.9.9:7700"] = "no route to host"
    wiz = SetupWizard(lambda: backend)
    qtbot.addWidget(wiz)
    applied: list[Any] = []
    wiz.applied.connect(applied.append)
    shots: list[str] = []
    wiz.show()
    run(drive(wiz, backend, shots.append), 60)
    assert shots == ["find", "pair", "networks", "witness", "modules", "vip", "review", "apply",
                     "apply-refused"]  # fmt: skip
    assert applied == [wiz.flow] and wiz.flow.done
    assert len(backend.applied) == 2  # the refused one, then the one both accepted
