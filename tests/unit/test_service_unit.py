"""installer/mirrorpair-agent.service: what the agent's service must be (issue 14), and
`systemd-analyze verify` accepts it without a warning."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import require_binary

UNIT = Path(__file__).resolve().parents[2] / "installer" / "mirrorpair-agent.service"
AGENT = "/opt/mirrorpair/venv/bin/mirrorpair-agent"


def _entries() -> dict[str, list[tuple[str, str]]]:
    """section -> (key, value) in order (systemd allows a key more than once)."""
    out: dict[str, list[tuple[str, str]]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            out.setdefault(section, [])
            continue
        key, _, value = line.partition("=")
        out[section].append((key.strip(), value.strip()))
    return out


def _service() -> dict[str, str]:
    return dict(_entries()["Service"])


def test_notify_service_with_a_watchdog():
    s = _service()
    assert s["Type"] == "notify" and s["NotifyAccess"] == "main"
    assert s["WatchdogSec"].endswith("s") and float(s["WatchdogSec"][:-1]) >= 2
    assert s["Restart"] in ("always", "on-failure")  # both restart on a watchdog timeout
    assert s["ExecStart"].split()[0] == AGENT
    assert "--config /etc/mirrorpair/cluster.toml" in s["ExecStart"]
    assert "--state-dir /var/lib/mirrorpair" in s["ExecStart"]
    assert s["EnvironmentFile"] == "-/etc/mirrorpair/node.env"


def test_agent_restart_leaves_data_planes_and_applications():
    assert _service()["KillMode"] == "process"


def test_only_a_refused_start_is_not_restarted():
    from node_agent.main import EX_CONFIG

    assert _service()["RestartPreventExitStatus"] == str(EX_CONFIG) == "78"


def test_no_personality_filter():
    # LockPersonality is a seccomp filter: setarch/linux32 in start scripts would fail.
    assert "LockPersonality" not in _service()


def test_unconfigured_agent_starts():
    # A fresh server's agent runs unpaired and serves the pairing code.
    assert not any(k.startswith("Condition") for k, _ in _entries()["Unit"])


def test_no_sandbox_that_hides_fuse_mounts_or_devices():
    forbidden = {
        "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "ReadWritePaths",
        "ReadOnlyPaths", "InaccessiblePaths", "TemporaryFileSystem", "BindPaths",
        "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
        "ProtectControlGroups", "ProtectProc", "ProcSubset", "PrivateMounts", "MountFlags",
        "ProtectClock", "DevicePolicy", "DeviceAllow", "PrivateNetwork", "NoNewPrivileges",
        "RestrictAddressFamilies", "SystemCallFilter", "CapabilityBoundingSet", "DynamicUser",
        "User", "RootDirectory", "RootImage", "PrivateUsers", "ProtectHostname",
    }  # fmt: skip
    assert forbidden.isdisjoint(_service())


def test_systemd_analyze_verify_is_clean(tmp_path: Path):
    analyze = require_binary("systemd-analyze")
    # The agent is not installed here: point ExecStart at a stand-in, the rest unchanged.
    stub = tmp_path / "mirrorpair-agent"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    unit = tmp_path / "mirrorpair-agent.service"
    unit.write_text(UNIT.read_text().replace(AGENT, str(stub)))
    r = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True,
                       text=True, timeout=60, cwd=tmp_path)  # fmt: skip
    # verify exits 0 on unknown keys and bad values too: any message is a failure.
    assert r.returncode == 0 and r.stderr.strip() == "" and r.stdout.strip() == "", r.stderr
