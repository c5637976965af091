"""installer/build-console-bundle.sh: PyInstaller builds the one-folder console bundle from
installer/mirrorpair-console.spec, and the bundle alone (no source tree, no venv on its path)
starts offscreen, shows the main window and exits 0 (its `--check`). Slow: a real build."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]


def test_bundle_builds_and_starts(tmp_path: Path) -> None:
    require(importlib.util.find_spec("PyInstaller") is not None,
            "needs PyInstaller (the dev extra: installer/dev setup)")  # fmt: skip
    dist, work = tmp_path / "dist", tmp_path / "work"
    try:
        _build_and_start(tmp_path, dist, work)
    finally:  # a quarter of a gigabyte: not left for pytest's last three runs
        shutil.rmtree(dist, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def _build_and_start(tmp_path: Path, dist: Path, work: Path) -> None:
    env = dict(os.environ, HOME=str(tmp_path / "home"))
    done = subprocess.run(
        [ROOT / "installer" / "build-console-bundle.sh", "--python", sys.executable,
         "--dist", dist, "--work", work],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    bundle = dist / "mirrorpair-console"
    assert "main window shown: yes (Qt platform offscreen, 0 cluster(s))" in done.stdout
    # Its resources come from the bundle, not from this tree.
    assert f"style sheet: {bundle}/_internal/resources/style/console.qss" in done.stdout
    assert "module templates: 4" in done.stdout
    assert done.stdout.rstrip().endswith("check passed")
    # What the console needs is in the bundle's module archive; the agent and the build
    # and test tools stay out.
    from PyInstaller.archive.readers import CArchiveReader

    pyz = CArchiveReader(str(bundle / "mirrorpair-console")).open_embedded_archive("PYZ.pyz")
    packages = {name.split(".")[0] for name in pyz.toc}
    wanted = {"console", "protos", "PySide6", "pyqtgraph", "qasync", "keyring", "secretstorage",
              "zeroconf", "ifaddr", "desktop_notifier", "grpc", "cryptography"}  # fmt: skip
    assert wanted <= packages, wanted - packages
    assert not {"node_agent", "grpc_tools", "PyInstaller", "pytest", "hypothesis"} & packages

    # Run it again directly, as an operator would after copying the folder.
    check = subprocess.run([bundle / "mirrorpair-console", "--check"], cwd=tmp_path,
                           env=dict(env, QT_QPA_PLATFORM="offscreen"), capture_output=True,
                           text=True, timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert "check passed" in check.stdout and "Traceback" not in check.stderr
