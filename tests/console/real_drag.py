"""A real mouse drag of a module card onto the other server column, as a person does it.

``python -m tests.console.real_drag CLUSTER_TOML CERT KEY`` runs the console on an X
display (``DISPLAY``, ``QT_QPA_PLATFORM=xcb``: Qt's offscreen platform has no drag and
drop), waits until the ``web`` card is settled, then drives the real pointer with
xdotool (XTest: press on the card, move past the drag distance, over the other column,
release). QDrag.exec runs its own loop meanwhile, exactly as with a mouse. The confirmation
that follows is answered yes; the driver then waits for the card to land in the other
column and prints one JSON line: what happened, for tests/console/test_console_real_drag.py.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import keyring
import qasync
from PySide6.QtWidgets import QApplication

from console.settings.clusters import entry_from_cluster_toml
from console.settings.secrets import SecretStore
from console.ui.main_window import MainWindow
from tests.console.live import TEST_TIMEOUTS
from tests.keyrings import MemoryKeyring

OTHER = {"node1": "node2", "node2": "node1"}


async def until(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)


async def drag(window: MainWindow) -> dict[str, Any]:
    view = window.current_view()
    assert view is not None
    await until(lambda: "web" in view.cards, 30, "no web card")
    card = view.card("web")
    await until(
        lambda: (
            all(card.state_text(n).endswith("Ready") for n in OTHER)
            and view.column_of("web") in OTHER
        ),
        30,
        "the pair did not settle in the console",
    )
    source = view.column_of("web")
    target = OTHER[source]
    a = card.mapToGlobal(card.rect().center())
    column = view.columns[target]
    b = column.mapToGlobal(column.rect().center())
    # Press, then move in steps (the drag starts past QApplication.startDragDistance),
    # over the target, release. Async: QDrag.exec runs inside our loop meanwhile.
    steps = ["mousemove", str(a.x()), str(a.y()), "mousedown", "1", "sleep", "0.3"]
    for i in range(1, 9):
        x = a.x() + (b.x() - a.x()) * i // 8
        steps += ["mousemove", str(x), str(b.y() if i > 2 else a.y()), "sleep", "0.1"]
    steps += ["sleep", "0.3", "mouseup", "1"]
    proc = await asyncio.create_subprocess_exec("xdotool", *steps)
    await proc.wait()
    await until(lambda: window.confirmer.current is not None, 10, "no confirmation after drop")
    box = window.confirmer.current
    assert box is not None
    # What the dialog shows inside it: the headline, then the details.
    asked = {"title": box.text(), "text": box.informativeText()}
    window.confirmer.answer(True)
    await until(lambda: view.column_of("web") == target, 30, "the card did not move")
    return {"source": source, "target": target, "asked": asked, "landed": view.column_of("web")}


def main(argv: list[str]) -> int:
    config, cert, key = (Path(a) for a in argv)
    keyring.set_keyring(MemoryKeyring())
    app = QApplication.instance() or QApplication(["real_drag"])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    entry = entry_from_cluster_toml(config, cert, key)
    window = MainWindow([entry], SecretStore(), settings_path=None, timeouts=TEST_TIMEOUTS)
    window.resize(1200, 760)
    window.move(0, 0)

    async def run() -> dict[str, Any]:
        window.start()
        window.show()
        window.raise_()
        window.activateWindow()
        try:
            return await drag(window)
        except (TimeoutError, AssertionError) as e:
            return {"error": str(e) or type(e).__name__}
        finally:
            window.hide()
            await window.shutdown()

    with loop:
        result = loop.run_until_complete(run())
    print(json.dumps(result), flush=True)
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
