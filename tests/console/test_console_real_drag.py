"""A real mouse drag (QDrag.exec, its own event loop, the X server's pointer) of a card onto
the other server column migrates the module, against two REAL agents.

Qt's offscreen platform has no drag and drop, so the console runs in a child process on a
virtual X display (Xvfb) and xdotool moves the pointer (tests/console/real_drag.py); the
other console tests drive the drop handler directly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.console.test_console_live import agents_swapped
from tests.integration.agents import LocalCluster

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def lc(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path / "cluster") as cluster:
        cluster.wait_settled("web")
        yield cluster


def test_a_real_mouse_drag_onto_the_other_column_migrates(display: str, lc: LocalCluster) -> None:
    require_binary("xdotool")
    primary, secondary = lc.wait_settled("web")
    demo = lc.cluster
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
    r = subprocess.run(
        [sys.executable, "-m", "tests.console.real_drag", str(demo.config_path),
         str(demo.admin_cert), str(demo.admin_key)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no result from the console (rc {r.returncode}):\n{r.stderr[-3000:]}"
    result = json.loads(lines[-1])
    assert "error" not in result, f"{result}\n{r.stderr[-3000:]}\n{lc.describe()}"
    assert (result["source"], result["target"]) == (primary, secondary)
    assert secondary in result["asked"]["title"] and primary in result["asked"]["text"]
    assert result["landed"] == secondary
    assert agents_swapped(lc, primary, secondary), lc.describe()
