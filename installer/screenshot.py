"""Take the console's screenshots in docs/ from the running program: a demo cluster (two
real agents on this machine), the console opened offscreen and connected to it.

- docs/console.png: once both nodes answer and every module has settled;
- docs/console-menu.png: the right-click menu of a module card, over the window;
- docs/console-alone.png: a module whose secondary the console stopped, running ALONE.

    .venv/bin/python installer/screenshot.py [--out docs/console.png]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

if TYPE_CHECKING:
    from console.ui.main_window import MainWindow
    from node_agent.demo_cluster import DemoCluster

MODULES = ("vms-recorder", "access-control", "intercom", "web-portal")
MENU_MODULE = "intercom"  # its card's menu is shown
ALONE_MODULE = "access-control"  # its secondary is stopped


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "console.png")
    p.add_argument("--menu-out", type=Path, default=ROOT / "docs" / "console-menu.png")
    p.add_argument("--alone-out", type=Path, default=ROOT / "docs" / "console-alone.png")
    p.add_argument("--width", type=int, default=1480)
    p.add_argument("--height", type=int, default=900)
    p.add_argument("--timeout", type=float, default=60.0)
    return p.parse_args(argv)


async def _settled(window: object, timeout: float) -> bool:
    """Until both nodes answer and every module has a Ready primary and a Ready secondary."""
    from console.ui.main_window import MainWindow

    assert isinstance(window, MainWindow)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        session = next(iter(window.sessions.values()))
        model = session.model
        views = model.modules()
        nodes_ok = all(model.reachable(n) for n in ("node1", "node2"))
        if (
            nodes_ok
            and len(views) == len(MODULES)
            and all(
                v.primary and all(n.readiness == "Ready" for n in v.nodes.values()) for v in views
            )
        ):
            return True
        await asyncio.sleep(0.2)
    return False


async def _menu_shot(window: object, out: Path) -> bool:
    """Right-click the card as a person would; the menu (its own window) painted over
    the window's grab where it opened."""
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtGui import QContextMenuEvent, QPainter
    from PySide6.QtWidgets import QApplication, QMenu

    from console.ui.main_window import MainWindow

    assert isinstance(window, MainWindow)
    view = window.current_view()
    assert view is not None
    card = view.card(MENU_MODULE)
    at = QPoint(card.width() // 3, card.height() // 2)
    event = QContextMenuEvent(QContextMenuEvent.Reason.Mouse, at, card.mapToGlobal(at))
    QApplication.sendEvent(card, event)
    await asyncio.sleep(0.5)
    menu = QApplication.activePopupWidget()
    if not isinstance(menu, QMenu):
        return False
    shot = window.grab()
    painter = QPainter(shot)
    painter.drawPixmap(window.mapFromGlobal(menu.pos()), menu.grab())
    painter.end()
    menu.close()
    return shot.save(str(out)) and not shot.isNull() and Qt is not None


async def _alone(window: object, timeout: float) -> bool:
    """Stop ALONE_MODULE's secondary from the console (as its menu's "Stop on …" does,
    confirmed) and wait until its primary shows ALONE."""
    from console.ui.main_window import MainWindow
    from protos import mirrorpair_pb2 as pb

    assert isinstance(window, MainWindow)
    view = window.current_view()
    assert view is not None
    module = view.session.model.module(ALONE_MODULE)
    assert module is not None and module.primary is not None
    primary = module.primary
    secondary = "node2" if primary == "node1" else "node1"
    window.flows[view.session.name].request_command(ALONE_MODULE, pb.COMMAND_STOP, secondary)
    window.confirmer.answer(True)
    view.select(ALONE_MODULE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if view.card(ALONE_MODULE).state_text(primary) == "ALONE · Ready":
            await asyncio.sleep(1.5)  # the timeline and the alert list catch up
            return True
        await asyncio.sleep(0.2)
    return False


def console_on(demo: DemoCluster, width: int, height: int) -> tuple[Any, MainWindow]:
    """The console's main window on ``demo``'s cluster, themed, with a qasync loop set as
    the asyncio loop (offscreen unless QT_QPA_PLATFORM says otherwise); also used by
    screenshot_vm.py."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import qasync
    from PySide6.QtWidgets import QApplication

    from console.settings.clusters import entry_from_cluster_toml
    from console.settings.secrets import SecretStore
    from console.ui.main_window import MainWindow
    from console.ui.theme import apply_theme

    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    apply_theme(app)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    entry = entry_from_cluster_toml(demo.config_path, demo.admin_cert, demo.admin_key)
    window = MainWindow([entry], SecretStore(), settings_path=None)
    window.resize(width, height)
    return loop, window


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from node_agent.demo import AgentProcess, kill_demo_apps, wait_ready
    from node_agent.demo_cluster import build_demo_cluster

    root = Path(tempfile.mkdtemp(prefix="mirrorpair-shot-"))
    agents: list[AgentProcess] = []
    try:
        demo = build_demo_cluster(root, modules=MODULES, name="headquarters")
        agents = [AgentProcess(demo, n) for n in ("node1", "node2")]
        for a in agents:
            a.start()
        wait_ready(demo, agents)

        loop, window = console_on(demo, args.width, args.height)

        async def shoot() -> bool:
            window.start()
            window.show()
            ok = await _settled(window, args.timeout)
            view = window.current_view()
            assert view is not None
            view.select(MODULES[0])
            await asyncio.sleep(1.5)  # let layouts and the log table settle
            args.out.parent.mkdir(parents=True, exist_ok=True)
            saved = window.grab().save(str(args.out))
            saved = await _menu_shot(window, args.menu_out) and saved
            alone = await _alone(window, args.timeout)
            saved = alone and window.grab().save(str(args.alone_out)) and saved
            await window.shutdown()
            return ok and saved

        with loop:
            ok = loop.run_until_complete(shoot())
        shots = f"{args.out}, {args.menu_out}, {args.alone_out}"
        print(f"saved {shots}" if ok else f"NOT all saved, or not settled: {shots}")
        return 0 if ok else 1
    finally:
        for a in agents:
            a.stop()
        if agents:
            kill_demo_apps(agents[0].cluster)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
