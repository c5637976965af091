"""Console tests: Qt offscreen, an in-memory keyring, and a qasync loop that runs while
pytest-qt's qtbot processes Qt events (so grpc.aio works inside ordinary tests)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before any QApplication exists
# Never touch a developer's real keyring, and do not let keyring pick MemoryKeyring
# (below) by itself: by default the tests see "no keyring backend", like this machine.
os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"

import keyring  # noqa: E402
import pytest  # noqa: E402

from tests.conftest import require_binary  # noqa: E402
from tests.keyrings import MemoryKeyring  # noqa: E402

T = TypeVar("T")


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


@pytest.fixture(scope="session")
def _aio_loop(qapp: Any) -> Iterator[Any]:
    """One qasync event loop for the whole session, marked running: asyncio callbacks run
    whenever Qt processes events (qtbot.waitUntil, qtbot.wait). One loop, because grpc.aio
    binds its completion-queue poller to the loop of the first channel while any channel
    lives; a later loop would never hear from gRPC (as in the app: one loop per process)."""
    import qasync

    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    # Marked running only inside the console tests that use it (fixture `aio`): other
    # tests in the same session call asyncio.run(), which refuses a running loop.
    asyncio.events._set_running_loop(None)
    try:
        yield loop
    finally:
        loop.stop()  # with no Qt loop running its app.exit() does nothing
        asyncio.events._set_running_loop(None)
        loop.close()
        asyncio.set_event_loop(None)


@pytest.fixture
def aio(_aio_loop: Any) -> Iterator[Any]:
    """The session's qasync loop, marked running for the duration of one test."""
    asyncio.set_event_loop(_aio_loop)
    asyncio.events._set_running_loop(_aio_loop)
    try:
        yield _aio_loop
    finally:
        asyncio.events._set_running_loop(None)


Runner = Callable[[Awaitable[T], float], T]


@pytest.fixture
def run(aio: Any, qtbot: Any) -> Callable[..., Any]:
    """``run(coroutine, timeout_s)``: drive it on the loop while Qt keeps running."""

    def runner(awaitable: Awaitable[T], timeout: float = 30.0) -> T:
        future = asyncio.ensure_future(awaitable)
        qtbot.waitUntil(future.done, timeout=int(timeout * 1000))
        return future.result()

    return runner


@pytest.fixture
def display() -> Iterator[str]:
    """A virtual X server (Xvfb) of its own; its DISPLAY name. For the tests that need
    what the offscreen platform lacks (drag and drop, a system tray)."""
    require_binary("Xvfb")
    read, write = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write)
    with os.fdopen(read) as f:
        number = f.readline().strip()
    assert number, "Xvfb did not report a display"
    try:
        yield f":{number}"
    finally:
        xvfb.terminate()
        xvfb.wait(10)
