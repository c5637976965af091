"""The shell scripts an operator runs pass shellcheck (warnings included)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_binary

INSTALLER = Path(__file__).resolve().parents[2] / "installer"


@pytest.mark.parametrize("script", ["install-agent.sh", "dev"])
def test_shellcheck(script: str) -> None:
    shellcheck = require_binary("shellcheck")
    done = subprocess.run(
        [shellcheck, "--shell=bash", str(INSTALLER / script)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
