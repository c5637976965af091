"""installer/install-console.sh into a scratch HOME: a real venv with the console installed
from this tree, a launcher that starts it (offscreen, `--check`), a valid desktop entry, the
icon in the hicolor theme; a second run changes none of them; --uninstall removes them and
keeps the console's settings."""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from console.ui.startup_check import import_problems, resource_problems, template_count
from tests.conftest import require, require_binary

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "installer" / "install-console.sh"


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "PYTHON"))}
    # pip's cache stays the real one (a scratch HOME would download every wheel again).
    env.setdefault("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))
    env.update(HOME=str(home), QT_QPA_PLATFORM="offscreen")
    return env


def _install(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([SCRIPT, "--user", "--no-apt", *args], env=_env(home),
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def _digests(paths: list[Path]) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_install_upgrade_uninstall(tmp_path: Path) -> None:
    require(os.access(SCRIPT, os.X_OK), f"{SCRIPT} is not executable")
    validate = require_binary("desktop-file-validate")
    home = tmp_path / "home"
    settings = home / ".config" / "mirrorpair" / "console.toml"
    settings.parent.mkdir(parents=True)
    settings.write_text("# the user's clusters\n")
    data = home / ".local" / "share"
    venv = data / "mirrorpair-console" / "venv"
    launcher = home / ".local" / "bin" / "mirrorpair-console"
    desktop = data / "applications" / "mirrorpair-console.desktop"
    icons = data / "icons" / "hicolor"
    svg = icons / "scalable" / "apps" / "mirrorpair.svg"
    pngs = {n: icons / f"{n}x{n}" / "apps" / "mirrorpair.png" for n in (48, 256)}

    first = _install(home)
    assert "checked: main window shown: yes" in first.stderr
    assert launcher.is_symlink() and launcher.resolve() == (venv / "bin" / "mirrorpair-console")
    # Installed, not linked to this tree: the venv carries the package and its resources.
    where = "import console; print(console.__file__)"
    site = subprocess.run([venv / "bin" / "python", "-c", where], env=_env(home), cwd=home,
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert str(venv) in site and str(ROOT) not in site
    check = subprocess.run([launcher, "--check"], env=_env(home), cwd=home, capture_output=True,
                           text=True, timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert "main window shown: yes (Qt platform offscreen" in check.stdout
    assert f"style sheet: {venv}/share/mirrorpair/style/console.qss" in check.stdout
    assert "module templates: 4" in check.stdout
    assert check.stdout.rstrip().endswith("check passed")

    entry = desktop.read_text()
    assert f"Exec={launcher}\n" in entry and "Icon=mirrorpair\n" in entry
    valid = subprocess.run([validate, desktop], capture_output=True, text=True)
    assert valid.returncode == 0 and "error" not in valid.stdout + valid.stderr, valid.stdout
    assert svg.read_bytes() == (ROOT / "resources" / "icons" / "mirrorpair.svg").read_bytes()
    for n, png in pngs.items():
        assert _png_size(png) == (n, n)

    files = [desktop, svg, *pngs.values()]
    before = _digests(files)
    again = _install(home)  # the same source: nothing to upgrade, nothing changed
    assert "is up to date with" in again.stderr
    assert _digests(files) == before
    assert launcher.resolve() == venv / "bin" / "mirrorpair-console"

    # A changed source is installed again (the upgrade in place), into the same venv.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "tests", "benchmarks",
        ".*_cache"))  # fmt: skip
    marker = "# upgraded by test_install_console\n"
    with (source / "console" / "__init__.py").open("a") as f:
        f.write(marker)
    upgraded = _install(home, "--source", str(source))
    assert "installing the console from" in upgraded.stderr
    installed = Path(site.strip())
    assert installed.read_text().endswith(marker) and _digests(files) == before

    _install(home, "--uninstall")
    for gone in (launcher, desktop, svg, *pngs.values(), venv, venv.parent):
        assert not gone.exists() and not gone.is_symlink(), gone
    assert settings.read_text() == "# the user's clusters\n"


def test_check_names_missing_resources(tmp_path: Path) -> None:
    style = tmp_path / "style" / "console.qss"
    icon = tmp_path / "icons" / "mirrorpair.svg"
    problems = resource_problems(style, icon)
    assert problems == [
        f"style sheet missing: {style} (set MIRRORPAIR_RESOURCES to the resources directory)",
        f"icon missing: {icon} (set MIRRORPAIR_RESOURCES to the resources directory)",
    ]
    icon.parent.mkdir()
    icon.write_text("<svg/>")
    assert resource_problems(style, icon) == [problems[0]]


def test_check_names_what_cannot_be_imported() -> None:
    assert import_problems(("json", "mirrorpair_no_such_module")) == [
        "cannot import mirrorpair_no_such_module: ModuleNotFoundError: "
        "No module named 'mirrorpair_no_such_module'"
    ]


def test_check_names_missing_templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "style").mkdir()  # a resources directory, without its templates
    monkeypatch.setenv("MIRRORPAIR_RESOURCES", str(tmp_path))
    problems: list[str] = []
    assert template_count(problems) == 0
    assert problems == [f"no module templates in {tmp_path / 'templates'}"]
    monkeypatch.delenv("MIRRORPAIR_RESOURCES")
    assert template_count(problems) == 4 and len(problems) == 1
