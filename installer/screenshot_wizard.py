"""Take the setup wizard's screenshots in docs/ (docs/wizard-<page>.png): the wizard,
themed as the console, driven through every page by the same steps as its test, over
the in-memory servers of tests/console/setup_fake.py (no agents needed).

    .venv/bin/python installer/screenshot_wizard.py [--out-dir docs]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out-dir", type=Path, default=ROOT / "docs")
    p.add_argument("--width", type=int, default=980)
    p.add_argument("--height", type=int, default=700)
    args = p.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import qasync
    from PySide6.QtWidgets import QApplication

    from console.ui.setup_wizard import SetupWizard
    from console.ui.theme import apply_theme
    from tests.console.setup_fake import two_servers
    from tests.console.wizard_drive import drive

    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    apply_theme(app)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    backend = two_servers()
    backend.unreachable["10.9.9.9:7700"] = "no route to host"
    wizard = SetupWizard(lambda: backend)
    wizard.resize(args.width, args.height)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []

    def shot(name: str) -> None:
        path = args.out_dir / f"wizard-{name}.png"
        app.processEvents()
        if wizard.grab().save(str(path)):
            saved.append(path)

    async def shoot() -> None:
        wizard.show()
        await drive(wizard, backend, shot)

    with loop:
        loop.run_until_complete(shoot())
    print("saved " + ", ".join(str(s) for s in saved))
    return 0 if len(saved) == 9 else 1


if __name__ == "__main__":
    sys.exit(main())
