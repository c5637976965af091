"""Shared test helpers.

Under CI=true a test whose environment is missing (root, FUSE, namespaces,
libvirt, a binary) must FAIL, never skip; outside CI it skips with the reason.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from node_agent.demo_vm.firmware import Firmware
    from node_agent.demo_vm.guest import Guest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip (outside CI) or fail (under CI=true) when condition is false."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true and the test environment is missing: {reason}")
    pytest.skip(reason)


def require_root() -> None:
    require(os.geteuid() == 0, "needs root (network namespaces, addresses)")


def require_binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    require(path is not None, f"needs the {name!r} program")
    return path or name


def require_fuse() -> None:
    require_root()
    require(os.path.exists("/dev/fuse"), "needs /dev/fuse")
    require_binary("fusermount3")


def require_vm() -> None:
    """What the VM tests need (docs/testing-vms.md): root, QEMU, libvirt's daemons, virsh and
    libvirt-python, and what builds the test guest."""
    require_root()
    for name in ("qemu-system-x86_64", "qemu-img", "libvirtd", "virtlogd", "virsh",
                 "unshare", "nsenter", "apt-get", "dpkg-deb"):  # fmt: skip
        require_binary(name)
    require(importlib.util.find_spec("libvirt") is not None,
            "needs libvirt-python (pip install -e '.[vm]', or installer/dev setup)")  # fmt: skip


@pytest.fixture(scope="session")
def guest() -> Guest:
    """The test guest (node_agent/demo_vm/guest.py), built once per machine and cached."""
    require_vm()
    from node_agent.demo_vm.guest import GuestBuildError, build_guest

    try:
        return build_guest()
    except GuestBuildError as e:
        require(False, f"cannot build the test guest: {e}")
        raise


@pytest.fixture(scope="session")
def uefi() -> Firmware:
    """The UEFI guests' firmware (node_agent/demo_vm/firmware.py: Debian trixie's OVMF),
    fetched once per machine and cached."""
    require_vm()
    from node_agent.demo_vm.firmware import FirmwareError, uefi_firmware

    try:
        return uefi_firmware()
    except FirmwareError as e:
        require(False, f"cannot fetch the UEFI test firmware: {e}")
        raise


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Data planes outlive agents by design; one a test left behind (a crash test whose
    node was never powered off) is killed here, not left serving a deleted folder."""
    import signal

    from node_agent.dataplane.supervisor import data_planes_under

    base = str(session.config._tmp_path_factory.getbasetemp())  # type: ignore[attr-defined]
    for pid in data_planes_under(base):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
