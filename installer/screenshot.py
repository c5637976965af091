"""Take docs/console.png: a demo cluster (two real agents on this machine), the console
opened offscreen and connected to it, grabbed once both nodes show and have settled.

    .venv/bin/python installer/screenshot.py [--out docs/console.png] [--keep DIR]
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

MODULES = ("vms-recorder", "access-control", "intercom", "web-portal")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "console.png")
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import qasync
    from PySide6.QtWidgets import QApplication

    from console.settings.clusters import entry_from_cluster_toml
    from console.settings.secrets import SecretStore
    from console.ui.main_window import MainWindow
    from console.ui.theme import apply_theme
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

        app = QApplication.instance() or QApplication([sys.argv[0]])
        assert isinstance(app, QApplication)
        apply_theme(app)
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)
        entry = entry_from_cluster_toml(demo.config_path, demo.admin_cert, demo.admin_key)
        window = MainWindow([entry], SecretStore(), settings_path=None)
        window.resize(args.width, args.height)

        async def shoot() -> bool:
            window.start()
            window.show()
            ok = await _settled(window, args.timeout)
            view = window.current_view()
            if view is not None:
                view.select(MODULES[0])
            await asyncio.sleep(1.5)  # let layouts and the log table settle
            args.out.parent.mkdir(parents=True, exist_ok=True)
            saved = window.grab().save(str(args.out))
            await window.shutdown()
            return ok and saved

        with loop:
            ok = loop.run_until_complete(shoot())
        print(f"{'saved' if ok else 'saved (cluster not settled!)'} {args.out}")
        return 0 if ok else 1
    finally:
        for a in agents:
            a.stop()
        if agents:
            kill_demo_apps(agents[0].cluster)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
