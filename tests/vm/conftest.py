"""Fixtures of the VM test infrastructure (the ``guest`` fixture is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_vm
from tests.vm.libvirtd import Libvirtd


@pytest.fixture
def local_libvirtd(tmp_path: Path) -> Iterator[Libvirtd]:
    """One libvirtd (and virtlogd) of the test's own, in a mount namespace of its own;
    connect with ``local_libvirtd.connect()``. Stopped, its domains destroyed, afterwards."""
    require_vm()
    with Libvirtd(tmp_path / "libvirt") as lv:
        yield lv
