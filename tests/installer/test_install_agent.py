"""installer/install-agent.sh into a scratch root (issue 14, point 1): the unit, the layout
and its modes, an agent that runs from its own venv and serves the pairing code the
installer printed (the console pairs with it); a second run reinstalls the package and
changes nothing else but the version; the commands are linked into /usr/local/bin (a
foreign file there kept) and needrestart is told never to restart the agent; --uninstall
keeps configuration and data, removes our links and the needrestart file, --purge removes
them (not while something is mounted there).

One install is shared by the module's tests (creating the venv and installing the
package takes 10-40 s here); they run in file order, the uninstall last.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import subprocess
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from console.client.discovery import fingerprint_of, served_certificate
from console.client.setup_client import SetupClient
from console.settings.secrets import SecretStore
from tests.conftest import require, require_root
from tests.integration.pairing_rig import free_port
from tests.keyrings import MemoryKeyring

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "installer" / "install-agent.sh"
UNIT = "etc/systemd/system/mirrorpair-agent.service"
VENV = "opt/mirrorpair/venv"
BIN = "usr/local/bin"
NEEDRESTART = "etc/needrestart/conf.d/mirrorpair.conf"


@dataclass
class Install:
    root: Path
    output: str  # stdout: what the operator reads at the end
    seconds: float


def clean_env() -> dict[str, str]:
    """The installed programs must run from their venv alone, not from the source tree
    that pytest put on PYTHONPATH."""
    return {k: v for k, v in os.environ.items() if k not in ("DESTDIR", "PYTHONPATH")}


def run_script(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), "--root", str(root), *args],
        capture_output=True, text=True, timeout=600, env=clean_env(), cwd=root.parent,
    )  # fmt: skip


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Mode and SHA-256 of every file and folder under etc/ and var/lib/."""
    found: dict[str, tuple[int, str]] = {}
    for top in ("etc", "var/lib"):
        for path in sorted((root / top).rglob("*")):
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
            found[str(path.relative_to(root))] = (path.lstat().st_mode, digest)
    return found


def project_version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Install:
    require(
        subprocess.run(["/usr/bin/python3", "-c", "import ensurepip, venv"]).returncode == 0,
        "needs /usr/bin/python3 with its venv module (Debian: python3-venv)",
    )
    root = tmp_path_factory.mktemp("server") / "root"
    start = time.monotonic()
    done = run_script(root)
    seconds = time.monotonic() - start
    assert done.returncode == 0, f"install failed:\n{done.stdout}\n{done.stderr}"
    print(f"install-agent.sh --root: {seconds:.1f} s")
    return Install(root, done.stdout, seconds)


def test_the_unit_and_the_layout(installed: Install) -> None:
    root = installed.root
    unit = root / UNIT
    assert unit.read_bytes() == (REPO / "installer" / "mirrorpair-agent.service").read_bytes()
    assert unit.stat().st_mode & 0o777 == 0o644
    # What the unit starts is what the installer made.
    (exec_start,) = re.findall(r"^ExecStart=(\S+)", unit.read_text(), re.M)
    assert (root / exec_start.lstrip("/")).is_file(), exec_start
    assert exec_start == f"/{VENV}/bin/mirrorpair-agent"
    modes = {
        "etc/mirrorpair": 0o750,
        "etc/mirrorpair/cluster.example.toml": 0o640,
        "etc/mirrorpair/node.env": 0o640,
        "var/lib/mirrorpair": 0o700,
        "opt/mirrorpair/VERSION": 0o644,
    }
    assert {p: (root / p).stat().st_mode & 0o777 for p in modes} == modes
    example = REPO / "resources" / "config" / "cluster.example.toml"
    assert (root / "etc/mirrorpair/cluster.example.toml").read_bytes() == example.read_bytes()
    assert not (root / "etc/mirrorpair/cluster.toml").exists()  # the console's wizard writes it
    assert "\nMIRRORPAIR_NODE=\n" in (root / "etc/mirrorpair/node.env").read_text()
    version = (root / "opt/mirrorpair/VERSION").read_text().splitlines()[0]
    assert version == f"mirrorpair {project_version()}"
    # A copy of the package in the venv, not the source tree (not an editable install).
    where = subprocess.run(
        [root / VENV / "bin/python", "-c", "import node_agent; print(node_agent.__file__)"],
        capture_output=True, text=True, cwd=root, check=True, env=clean_env(),
    ).stdout.strip()  # fmt: skip
    assert Path(where).is_relative_to(root / VENV / "lib"), where
    for port in ("7700/tcp", "7701/udp", "7702/tcp", "5353/udp"):
        assert port in installed.output
    # The operator's commands on the PATH, linked to the venv's.
    for name in ("mirrorpair", "mirrorpair-agent"):
        link = root / BIN / name
        assert link.is_symlink() and os.readlink(link) == str(root / VENV / "bin" / name)
        assert link.resolve().is_file()
    # needrestart (apt, Ubuntu 24.04) must never `systemctl restart` the agent.
    needrestart = (root / NEEDRESTART).read_text()
    assert "$nrconf{override_rc}{qr(^mirrorpair-agent)} = 0;\n" in needrestart
    assert (root / NEEDRESTART).stat().st_mode & 0o777 == 0o644


def test_the_installed_agent_serves_the_code_printed_and_pairs_with_it(
    installed: Install, tmp_path: Path
) -> None:
    root = installed.root
    state = root / "var/lib/mirrorpair"
    code = re.search(r"^pairing code: (\S+)$", installed.output, re.M)
    fp = re.search(r"^certificate fingerprint: ([0-9a-f]{64})$", installed.output, re.M)
    assert code and fp, installed.output
    assert (state / "pairing-code").read_text().strip() == code[1]
    address = f"127.0.0.1:{free_port()}"
    log_path = tmp_path / "agent.log"
    with log_path.open("wb") as log:
        agent = subprocess.Popen(
            [root / VENV / "bin/mirrorpair-agent", "--config", root / "etc/mirrorpair/cluster.toml",
             "--state-dir", state, "--listen", address, "--no-mdns"],
            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=clean_env(),
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "ready on" not in log_path.read_text():
            assert agent.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        assert code[1] in log_path.read_text()  # the same code, not a new one
        assert fingerprint_of(asyncio.run(served_certificate(address))) == fp[1]
        desk = SetupClient(tmp_path / "desk", SecretStore(MemoryKeyring()), cluster_name="site")

        async def pair() -> None:
            found = await desk.reach(address)
            assert found.pairing_open and found.version == project_version()
            await desk.pair(found, "node1", code[1])

        asyncio.run(pair())
        assert '"node_id": "node1"' in (state / "pairing.json").read_text()
    finally:
        agent.terminate()
        agent.wait(30)


def test_a_second_run_reinstalls_the_package_and_keeps_configuration_and_data(
    installed: Install,
) -> None:
    root = installed.root
    etc, data = root / "etc/mirrorpair", root / "var/lib/mirrorpair"
    # What an operator and the agent leave: a configuration, an edited node.env, data.
    config = (
        (etc / "cluster.example.toml").read_text().replace('"10.0.0.1:7700"', '"10.0.0.1:7800"')
    )
    (etc / "cluster.toml").write_text(config)
    (etc / "node.env").write_text("MIRRORPAIR_NODE=node1\n")
    (data / "node1").mkdir(exist_ok=True)
    (data / "node1/facts.json").write_bytes(os.urandom(4096))
    installed_file = next((root / VENV / "lib").glob("python3*/site-packages/node_agent/main.py"))
    installed_file.unlink()  # a damaged install: the second run must put the package back
    foreign = root / BIN / "mirrorpair"  # another program of that name: not ours to replace
    foreign.unlink()
    foreign.write_text("#!/bin/sh\necho foreign\n")
    before = snapshot(root)
    version_before = (root / "opt/mirrorpair/VERSION").read_text().splitlines()[0]

    start = time.monotonic()
    done = run_script(root)
    print(f"second run: {time.monotonic() - start:.1f} s")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert snapshot(root) == before  # the unit, configuration and data: byte for byte
    assert (root / "opt/mirrorpair/VERSION").read_text().splitlines()[0] == version_before
    assert installed_file.is_file()
    assert foreign.read_text() == "#!/bin/sh\necho foreign\n"
    assert f"{foreign} is not MirrorPair's" in done.stdout
    agent_help = subprocess.run(  # through the link on the PATH
        [root / BIN / "mirrorpair-agent", "--help"],
        capture_output=True, text=True, cwd=root, env=clean_env(),
    )  # fmt: skip
    assert agent_help.returncode == 0 and "--open-pairing" in agent_help.stdout
    assert "reinstalled in place" in done.stdout
    # The ports are read from the configuration now; the server is set up: no code.
    assert "7800/tcp" in done.stdout and "already set up" in done.stdout
    assert "pairing code:" not in done.stdout

    # A --node that contradicts node.env is refused before anything changes.
    refused = run_script(root, "--node", "node2")
    assert refused.returncode != 0 and "MIRRORPAIR_NODE=node1" in refused.stderr
    assert snapshot(root) == before
    bad = run_script(root, "--node", "node3")
    assert bad.returncode != 0 and "--node must be node1 or node2" in bad.stderr


def test_uninstall_keeps_configuration_and_data_purge_removes_them(installed: Install) -> None:
    root = installed.root
    ours = ("etc/systemd", "etc/needrestart")
    kept = {p: v for p, v in snapshot(root).items() if not p.startswith(ours)}
    assert (root / NEEDRESTART).is_file() and (root / BIN / "mirrorpair-agent").is_symlink()
    done = run_script(root, "--uninstall")
    assert done.returncode == 0, done.stderr
    assert not (root / UNIT).exists() and not (root / "opt/mirrorpair").exists()
    assert not (root / "etc/needrestart").exists()  # its folders too: nothing else in them
    assert not (root / BIN / "mirrorpair-agent").is_symlink()  # our link: removed
    assert (root / BIN / "mirrorpair").read_text() == "#!/bin/sh\necho foreign\n"  # kept
    after = {p: v for p, v in snapshot(root).items() if not p.startswith(ours)}
    assert after == kept

    # Never purge through a mount (a data plane's FUSE mount would pass the deletes on).
    require_root()
    mount = root / "var/lib/mirrorpair/node1/mnt"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", mount], check=True)
    try:
        (mount / "held").write_text("data")
        refused = run_script(root, "--uninstall", "--purge")
        assert refused.returncode != 0 and str(mount) in refused.stderr
        assert (mount / "held").read_text() == "data"
        assert (root / "etc/mirrorpair/cluster.toml").exists()
    finally:
        subprocess.run(["umount", mount], check=True)
    purged = run_script(root, "--uninstall", "--purge")
    assert purged.returncode == 0, purged.stderr
    assert not (root / "etc/mirrorpair").exists() and not (root / "var/lib/mirrorpair").exists()
