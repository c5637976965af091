"""``mirrorpair-console --check``: start, load the UI, show the main window, exit.

An installer or a packaged bundle uses it to prove the console really runs where it was
put (every Qt module, the style sheet and the icon found) without anyone watching: it
prints what it found and exits 0, or 1 naming what is missing.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtWidgets import QApplication, QMainWindow

from console.ui import theme


@dataclass
class CheckReport:
    shown: bool
    platform: str
    clusters: int
    style_sheet: Path
    icon: Path
    keyring: str = ""
    templates: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        out = [
            f"main window shown: {'yes' if self.shown else 'no'} "
            f"(Qt platform {self.platform}, {self.clusters} cluster(s))",
            f"style sheet: {self.style_sheet}",
            f"icon: {self.icon}",
            f"keyring backend: {self.keyring}",
            f"module templates: {self.templates}",
        ]
        out += [f"problem: {p}" for p in self.problems]
        out.append("check passed" if self.ok else "check FAILED")
        return out


def resource_problems(style_sheet: Path, icon: Path) -> list[str]:
    """What the console would lack (a bundle or an install that forgot its resources)."""
    return [
        f"{what} missing: {path} (set MIRRORPAIR_RESOURCES to the resources directory)"
        for what, path in (("style sheet", style_sheet), ("icon", icon))
        if not path.is_file()
    ]


# Imported only when first needed (discovery, alerts without a tray, the keyring): a bundle
# that forgot one would fail later, in front of the operator, so the check imports them now.
LAZY_IMPORTS = ("console.client.discovery", "console.ui.setup_wizard", "pyqtgraph", "keyring")
LAZY_IMPORTS_LINUX = ("desktop_notifier", "desktop_notifier.backends.dbus")


def import_problems(names: tuple[str, ...]) -> list[str]:
    problems = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as e:  # an ImportError, or a library failing as it loads
            problems.append(f"cannot import {name}: {type(e).__name__}: {e}")
    return problems


def keyring_backend() -> str:
    import keyring

    kr = keyring.get_keyring()
    return f"{type(kr).__module__}.{type(kr).__name__}"


def template_count(problems: list[str]) -> int:
    """How many module templates the wizard will offer; none is a problem (appended)."""
    from console.setup.templates import TemplateError, default_templates_dir, load_templates

    try:
        count = len(load_templates())
    except (OSError, TemplateError) as e:
        problems.append(f"module templates: {e}")
        return 0
    if not count:
        problems.append(f"no module templates in {default_templates_dir()}")
    return count


async def check_window(window: QMainWindow, clusters: int, timeout: float = 10.0) -> CheckReport:
    """Wait (up to ``timeout``) until the shown window is visible and exposed."""
    deadline = time.monotonic() + timeout
    shown = False
    while time.monotonic() < deadline:
        handle = window.windowHandle()
        if window.isVisible() and handle is not None and handle.isExposed():
            shown = True
            break
        await asyncio.sleep(0.05)
    problems = resource_problems(theme.STYLE_SHEET, theme.APP_ICON)
    names = LAZY_IMPORTS + (LAZY_IMPORTS_LINUX if sys.platform.startswith("linux") else ())
    problems += import_problems(names)
    templates = template_count(problems)
    if not shown:
        problems.insert(0, f"the main window was not shown within {timeout:.0f} s")
    return CheckReport(
        shown=shown,
        platform=QApplication.platformName(),
        clusters=clusters,
        style_sheet=theme.STYLE_SHEET,
        icon=theme.APP_ICON,
        keyring=keyring_backend(),
        templates=templates,
        problems=problems,
    )
