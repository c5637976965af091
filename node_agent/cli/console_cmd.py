"""Opening the desktop console from the command line: `mirrorpair console` and the
`mirrorpair-console` entry point. Both first check what Qt would otherwise fail on with
a traceback or an abort -- the console extra not installed, no display to open on --
and say what to do instead (exit 17).

Qt is never imported here: the checks run before the console package is loaded.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import re
import socket
import sys
from collections.abc import Mapping, Sequence

from node_agent.cli.commands import Context
from node_agent.cli.exits import Exit

# The console extra's distributions when mirrorpair's own metadata cannot be read
# (running from a source tree that was never pip-installed).
_FALLBACK_EXTRA = ("PySide6-Essentials", "qasync", "pyqtgraph", "keyring", "zeroconf")
# Platforms that need no display server: the user chose where the console renders.
_XCB_OR_WAYLAND = ("", "xcb", "wayland", "wayland-egl")
INSTALL_HINT = (
    "install it with: installer/dev setup (a source tree), or "
    "pip install 'mirrorpair[console]' in the environment that runs mirrorpair"
)


def console_extra_requirements() -> list[str]:
    """Distribution names of the `console` extra, from mirrorpair's metadata."""
    try:
        requires = importlib.metadata.requires("mirrorpair") or []
    except importlib.metadata.PackageNotFoundError:
        return list(_FALLBACK_EXTRA)
    names = []
    for req in requires:
        name, _, marker = req.partition(";")
        if re.search(r"""extra\s*==\s*["']console["']""", marker):
            match = re.match(r"[A-Za-z0-9._-]+", name.strip())
            if match:
                names.append(match.group(0))
    return names or list(_FALLBACK_EXTRA)


def missing_console_packages() -> list[str]:
    missing = []
    for name in console_extra_requirements():
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    return missing


def _connects(family: int, address: str | tuple[str, int], timeout: float = 2.0) -> bool:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(address)
            return True
    except OSError:
        return False


def x_display_reachable(display: str) -> bool:
    """True when something accepts connections where X clients would connect for
    ``display`` (":0", "unix:0", "localhost:10.0" as `ssh -X` sets it)."""
    host, sep, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if not sep or not number.isdigit():
        return False
    if host in ("", "unix"):
        path = f"/tmp/.X11-unix/X{number}"
        # Linux X servers listen on an abstract socket too; either will do.
        return _connects(socket.AF_UNIX, "\0" + path) or _connects(socket.AF_UNIX, path)
    return _connects(socket.AF_INET, (host.strip("[]"), 6000 + int(number)))


def display_problem(env: Mapping[str, str] | None = None) -> str | None:
    """Why Qt could not open a window here, or None when it can (as far as can be told
    without starting Qt: a display server accepts connections)."""
    env = os.environ if env is None else env
    platform = env.get("QT_QPA_PLATFORM", "").split(":")[0].strip()
    if platform not in _XCB_OR_WAYLAND:
        return None  # offscreen, vnc, eglfs...: chosen explicitly
    wayland, display = env.get("WAYLAND_DISPLAY", ""), env.get("DISPLAY", "")
    problems = []
    if wayland and platform != "xcb":
        runtime = env.get("XDG_RUNTIME_DIR", "")
        path = wayland if wayland.startswith("/") else os.path.join(runtime, wayland)
        if _connects(socket.AF_UNIX, path):
            return None
        problems.append(f"the Wayland display {wayland!r} does not answer ({path})")
    if display:
        if x_display_reachable(display):
            return None
        problems.append(f"the X display {display!r} does not answer")
    if not problems:
        return "no display: DISPLAY and WAYLAND_DISPLAY are unset"
    return "; ".join(problems)


def how_to_watch_text(command: str) -> str:
    """What an admin without a display here can do that works: the console must run on
    this machine (the demo's agents listen on 127.0.0.x), shown on their desktop."""
    return (
        "  from a desktop (Linux, or macOS/Windows with an X server), log in with X "
        "forwarding:\n"
        f"    ssh -X {_user()}@{socket.gethostname()}\n"
        "  and run there:\n"
        f"    {command}"
    )


def _user() -> str:
    with contextlib.suppress(KeyError, OSError):
        import getpass

        return getpass.getuser()
    return "root"


def console_problem(env: Mapping[str, str] | None = None) -> str | None:
    """The first reason the console cannot open here (extra missing, no display)."""
    missing = missing_console_packages()
    if missing:
        return f"the desktop console is not installed (missing: {', '.join(missing)}); " + (
            INSTALL_HINT
        )
    problem = display_problem(env)
    if problem:
        return f"the desktop console needs a display: {problem}"
    return None


def run_console(argv: Sequence[str]) -> int:
    """Check, then run console.app.main(argv) in this process."""
    problem = console_problem()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        if "display" in problem:
            print(
                "Run it from a desktop session, or from a desktop with `ssh -X` to this "
                "machine. (QT_QPA_PLATFORM=offscreen runs it without showing anything.)",
                file=sys.stderr,
            )
        return Exit.NO_CONSOLE
    os.environ.setdefault("QT_AUTO_SCREEN_SCALE_FACTOR", "1")
    from console.app import main as console_main  # Qt only now, after the checks

    return int(console_main(list(argv)) or 0)


def console_entry_point() -> int:
    """`mirrorpair-console`: the console, or a clear message instead of Qt's abort.
    --help needs neither Qt nor a display."""
    argv = sys.argv[1:]
    if any(a in ("-h", "--help") for a in argv) and not missing_console_packages():
        from console.app import parse_args

        parse_args(argv)  # prints the help and exits
    return run_console(argv)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    c = sub.add_parser(
        "console",
        help="open the desktop console on this cluster",
        description="Open the desktop console (mirrorpair-console) on the cluster of --config, "
        "with the client certificate of --cert/--key (default: the config's [tls] files). "
        "Needs the console extra and a display; exits 17 with what to do when either is "
        "missing.",
    )
    c.set_defaults(handler=cmd_console)


def cmd_console(ctx: Context, args: argparse.Namespace) -> int:
    tls = ctx.tls()
    argv = ["--cluster-config", str(args.config), "--cert", str(tls.cert), "--key", str(tls.key)]
    argv += ["--ca", str(tls.ca)]
    return run_console(argv)
