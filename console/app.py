"""``mirrorpair-console``: the desktop console (DESIGN §8).

mirrorpair-console                       # the clusters of ~/.config/mirrorpair/console.toml
mirrorpair-console --cluster-config cluster.toml --cert admin.pem --key admin.key
mirrorpair-console --check               # start, show the main window, exit 0 (or 1)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from console.settings.clusters import (
    ClusterEntry,
    SettingsError,
    default_config_path,
    entry_from_cluster_toml,
    load_clusters,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="mirrorpair-console",
        description="Watch and operate MirrorPair clusters. Without --cluster-config, the "
        "clusters listed in the console's settings file are opened.",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"the console's cluster list (default {default_config_path()})",
    )
    p.add_argument(
        "--cluster-config",
        type=Path,
        metavar="FILE",
        help="open only this cluster (an agents' cluster.toml); nothing is saved",
    )
    p.add_argument("--cert", type=Path, help="the console's certificate (with --cluster-config)")
    p.add_argument("--key", type=Path, help="its key (with --cluster-config)")
    p.add_argument("--ca", type=Path, help="the cluster CA (default: [tls].ca of the file)")
    p.add_argument(
        "--check",
        action="store_true",
        help="start, load the UI, show the main window, print what was found (Qt platform, "
        "style sheet, icon) and exit: 0 when the window was shown and nothing is missing, "
        "1 otherwise (for installers and packaged bundles; QT_QPA_PLATFORM=offscreen "
        "needs no display)",
    )
    args = p.parse_args(argv)
    if args.cluster_config and not (args.cert and args.key):
        p.error("--cluster-config needs --cert and --key (the console's own certificate)")
    return args


def load_entries(args: argparse.Namespace) -> tuple[list[ClusterEntry], Path | None]:
    """The clusters to open and the settings file to save changes to (None: do not)."""
    if args.cluster_config:
        entry = entry_from_cluster_toml(args.cluster_config, args.cert, args.key, args.ca)
        return [entry], None
    path = args.config or default_config_path()
    return load_clusters(path), path


if TYPE_CHECKING:
    from console.settings.secrets import SecretStore


def setup_backend_factory(secrets: SecretStore, base_dir: Path):  # type: ignore[no-untyped-def]
    """The setup wizard's backends: a new cluster's PKI goes under ``base_dir/<name>``."""
    from console.client.setup_client import SetupClient

    def factory(entry: ClusterEntry | None) -> SetupClient:
        if entry is None:
            return SetupClient(base_dir, secrets)
        return SetupClient.for_entry(entry, secrets, base_dir)

    return factory


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        entries, settings_path = load_entries(args)
    except SettingsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    # Qt is imported only now: `--help` and argument errors stay fast and display-free.
    import qasync
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from console.settings.secrets import SecretStore
    from console.ui.main_window import MainWindow
    from console.ui.theme import app_icon, apply_theme

    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setApplicationName("MirrorPair Console")
    app.setDesktopFileName("mirrorpair-console")
    app.setQuitOnLastWindowClosed(False)  # the loop ends when the window says so
    apply_theme(app)
    app.setWindowIcon(app_icon())
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)

    secrets = SecretStore()
    window = MainWindow(
        entries, secrets, settings_path=settings_path,
        setup_backends=setup_backend_factory(
            secrets, (settings_path or default_config_path()).parent
        ),
    )  # fmt: skip
    closed = asyncio.Event()
    window.closed.connect(closed.set)
    signal.signal(signal.SIGINT, lambda *_: window.close())
    signal.signal(signal.SIGTERM, lambda *_: window.close())
    # Python runs signal handlers only when it gets control: wake it now and then.
    wake = QTimer()
    wake.start(300)
    wake.timeout.connect(lambda: None)

    status = 0

    async def run() -> None:
        nonlocal status
        window.start()
        window.show()
        if args.check:
            from console.ui.startup_check import check_window

            report = await check_window(window, len(entries))
            print("\n".join(report.lines()), flush=True)
            status = 0 if report.ok else 1
            window.close()
        await closed.wait()
        window.hide()
        await window.shutdown()

    with loop:
        loop.run_until_complete(run())
    return status


if __name__ == "__main__":
    os.environ.setdefault("QT_AUTO_SCREEN_SCALE_FACTOR", "1")
    sys.exit(main())
