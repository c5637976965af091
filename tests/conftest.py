"""Shared test helpers.

Under CI=true a test whose environment is missing (root, FUSE, namespaces,
libvirt, a binary) must FAIL, never skip; outside CI it skips with the reason.
"""

from __future__ import annotations

import os
import shutil

import pytest

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
