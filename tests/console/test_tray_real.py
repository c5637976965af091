"""The tray icon and its desktop notifications, on a real X display (Xvfb) with a real
system tray (trayer): the icon docks, and failover, degraded replication and split
brain each pop a balloon with their title and text; an operator's planned move does
not. The offscreen platform has no tray, so the notifier runs in a child process
(tests/console/tray_probe.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import require_binary

REPO = Path(__file__).resolve().parents[2]


def test_alerts_pop_up_from_the_tray_icon(display: str) -> None:
    require_binary("trayer")
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
    tray = subprocess.Popen(["trayer", "--edge", "bottom"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        r = subprocess.run([sys.executable, "-m", "tests.console.tray_probe"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    finally:
        tray.terminate()
        tray.wait(10)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no result from the probe (rc {r.returncode}):\n{r.stderr[-3000:]}"
    result = json.loads(lines[-1])
    assert result["available"], "Qt found no system tray on the display"
    # Where a tray exists, the balloons come from it (not the notification service).
    assert not result["desktop"] and result["delivery"] == "tray balloons"
    assert result["tooltip"] == "MirrorPair: desk needs attention"
    failover, moved, degraded, split = result["screens"]

    def balloons(screen: list[dict]) -> list[list[str]]:
        return [w["texts"] for w in screen if w["class"] == "QBalloonTip"]

    assert any(w["class"] == "QSystemTrayIconSys" for w in failover), failover  # docked
    assert balloons(failover) == [["Failover: web", "web now on node2"]]
    assert not any("Moved: web" in b for b in balloons(moved)), moved
    assert balloons(degraded) == [["Degraded: web", "node1 runs alone"]]
    assert balloons(split) == [["Split brain: web", "both wrote"]]
