"""mirrorpair-agent's exit status and signals (node_agent.main, node_agent.host.signals):
78 (EX_CONFIG, not restarted by the unit) only for what is refused while starting."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from node_agent.host.signals import SignalAction, signal_action
from node_agent.main import EX_CONFIG, main


def test_a_bad_command_line_is_ex_config(capsys):
    assert main(["--node", "node3"]) == EX_CONFIG
    assert "--node must be node1 or node2" in capsys.readouterr().err
    assert main(["--no-such-option"]) == EX_CONFIG
    assert main(["--help"]) == 0


def test_a_bad_configuration_at_start_is_ex_config(tmp_path: Path):
    """In a process of its own (the agent sets up logging and malloc for its process)."""
    config = tmp_path / "cluster.toml"
    config.write_text('[cluster]\nname = "x"\npluse_ms = 250\n')
    argv = [sys.executable, "-m", "node_agent.main", "--config", str(config), "--node", "node1",
            "--state-dir", str(tmp_path / "st"), "--no-mdns", "--log-file", "-"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == EX_CONFIG, r.stderr
    assert "config error" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_signals_before_and_during_a_clean_stop():
    assert signal_action(signal.SIGTERM, stopping=False) is SignalAction.STOP
    assert signal_action(signal.SIGINT, stopping=False) is SignalAction.STOP
    assert signal_action(signal.SIGUSR2, stopping=False) is SignalAction.LEAVE_RUNNING
    # Once a clean stop began nothing interrupts it: neither a second SIGTERM nor SIGUSR2
    # (whose "leaving" heartbeat would have the peer keep this node's last view).
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2):
        assert signal_action(sig, stopping=True) is SignalAction.IGNORE
