"""`mirrorpair-console` as a process: opens a real cluster, keeps running, and exits
cleanly (code 0, quickly) on SIGTERM — also while one agent address hangs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.console.live import HangingListener
from tests.integration.agents import LocalCluster

ROOT = Path(__file__).resolve().parents[2]


def test_help_is_fast_and_needs_no_display() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "QT_QPA_PLATFORM")}
    out = subprocess.run(
        [sys.executable, "-m", "console.app", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0 and "--cluster-config" in out.stdout


def test_console_process_runs_and_stops_cleanly(tmp_path: Path) -> None:
    hang = HangingListener()
    try:
        with LocalCluster(tmp_path / "cluster") as lc:
            demo = lc.cluster
            text = demo.config_path.read_text().replace(demo.api["node2"], hang.address)
            cfg = tmp_path / "hanging.toml"
            cfg.write_text(text)
            env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "console.app",
                    "--cluster-config",
                    str(cfg),
                    "--cert",
                    str(demo.admin_cert),
                    "--key",
                    str(demo.admin_key),
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            try:
                deadline = time.monotonic() + 20
                while not hang.accepted and time.monotonic() < deadline:
                    assert proc.poll() is None, proc.communicate()[0]
                    time.sleep(0.2)
                assert hang.accepted, "the console never dialled node2"
                time.sleep(1.0)
                assert proc.poll() is None
                t0 = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                out, _ = proc.communicate(timeout=20)
                assert proc.returncode == 0, out
                assert time.monotonic() - t0 < 10, "slow to quit (blocked on a hanging call?)"
                assert "Traceback" not in out, out
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    finally:
        hang.close()
