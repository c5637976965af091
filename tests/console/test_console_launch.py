"""`mirrorpair-console` / `mirrorpair console` say clearly why the console cannot open
(no display, console extra not installed) instead of Qt's abort or a traceback; with a
display they open it. Real programs, a real X server (Xvfb), a real Python environment
without the console extra."""

from __future__ import annotations

import importlib.metadata
import os
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path

from node_agent.cli.console_cmd import (
    console_extra_requirements,
    display_problem,
    x_display_reachable,
)

BIN = Path(sys.executable).parent
NO_DISPLAY = {k: v for k, v in os.environ.items()
              if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}  # fmt: skip


def _unused_display() -> str:
    n = 90
    while os.path.exists(f"/tmp/.X11-unix/X{n}") or os.path.exists(f"/tmp/.X{n}-lock"):
        n += 1
    return f":{n}"


def test_display_problem(display: str) -> None:
    assert display_problem({}) == "no display: DISPLAY and WAYLAND_DISPLAY are unset"
    dead = _unused_display()
    assert display_problem({"DISPLAY": dead}) == f"the X display {dead!r} does not answer"
    assert display_problem({"DISPLAY": display}) is None  # a real X server
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}) is None  # chosen explicitly
    assert "Wayland display 'wayland-9'" in (
        display_problem({"WAYLAND_DISPLAY": "wayland-9", "XDG_RUNTIME_DIR": "/nonexistent"}) or ""
    )
    # A forwarded display (ssh -X sets DISPLAY=localhost:10.0) is a TCP port 6000 + N.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]  # ephemeral: above 6000
        assert x_display_reachable(f"127.0.0.1:{port - 6000}.0")
    assert not x_display_reachable("nonsense")


def run_console(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BIN / "mirrorpair-console", *args], env=env, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip


def test_without_a_display_a_message_not_an_abort(tmp_path: Path) -> None:
    done = run_console(NO_DISPLAY)
    assert done.returncode == 17, done.stderr
    assert "error: the desktop console needs a display: no display" in done.stderr
    assert "ssh -X" in done.stderr
    assert "Traceback" not in done.stderr and "qt.qpa" not in done.stderr
    dead = run_console(dict(NO_DISPLAY, DISPLAY=_unused_display()))
    assert dead.returncode == 17 and "does not answer" in dead.stderr, dead.stderr
    # --help needs no display.
    helped = run_console(NO_DISPLAY, "--help")
    assert helped.returncode == 0 and "--cluster-config" in helped.stdout


def _site_without_console_extra(tmp_path: Path) -> Path:
    """This venv's site-packages without the console extra's distributions: what
    `pip install mirrorpair` (no [console]) leaves. Symlinks; nothing is copied."""
    site = Path(sysconfig.get_paths()["purelib"])
    hidden: set[str] = set()
    for name in console_extra_requirements():
        dist = importlib.metadata.distribution(name)
        hidden |= {Path(str(f)).parts[0] for f in dist.files or ()}
    assert any(h.lower().startswith("pyside6") for h in hidden), hidden
    out = tmp_path / "site-packages"
    out.mkdir()
    for entry in site.iterdir():
        if entry.name not in hidden:
            (out / entry.name).symlink_to(entry)
    return out


def test_without_the_console_extra_a_message_not_a_traceback(tmp_path: Path) -> None:
    site = _site_without_console_extra(tmp_path)
    purelib = sysconfig.get_paths()["purelib"]
    code = (
        "import site, sys\n"
        f"sys.path[:] = [p for p in sys.path if not p.startswith({purelib!r})]\n"
        f"site.addsitedir({str(site)!r})\n"
        "sys.argv = ['mirrorpair-console']\n"
        "from node_agent.cli.console_cmd import console_entry_point\n"
        "sys.exit(console_entry_point())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=NO_DISPLAY, capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 17, done.stdout + done.stderr
    assert "the desktop console is not installed (missing: PySide6-Essentials" in done.stderr
    assert "installer/dev setup" in done.stderr and "Traceback" not in done.stderr
    # And the CLI itself still works there: the console is only an extra.
    check = code.replace("console_cmd import console_entry_point", "main import main").replace(
        "sys.exit(console_entry_point())", "sys.exit(main(['--version']))"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0 and done.stdout.startswith("mirrorpair "), done.stderr
