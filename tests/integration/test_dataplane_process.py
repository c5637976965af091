"""A module's data plane process on its own (node_agent/dataplane/): started for real, its
control socket, its token, its hand-over of connections, its lifetime apart from the
client that started it. The two-server behaviour is in test_site_dataplane.py."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from node_agent.dataplane.client import DataPlaneClient, DataPlaneError
from node_agent.dataplane.handoff import HandoffError, hand_off
from node_agent.dataplane.spec import DataPlaneSpec, socket_names
from node_agent.dataplane.supervisor import connect, find_running, read_pid, spawn
from node_agent.procfs import running
from protos import dataplane_pb2 as dp
from protos import dataplane_pb2_grpc as dp_grpc
from tests.conftest import require_fuse
from tests.integration.repl_rig import Pki

pytestmark = pytest.mark.root


def _spec(tmp: Path, pki: Pki) -> DataPlaneSpec:
    paths = pki.paths("node1")
    return DataPlaneSpec(
        module="web", directories=(str(tmp / "mnt"),), copy_root=str(tmp / "m" / "copy"),
        track_root=str(tmp / "m" / "track"), node_id="node1", peer_id="node2",
        peer_host="127.0.0.1", peer_port=1, ca=str(paths.ca), cert=str(paths.cert),
        key=str(paths.key),
    )  # fmt: skip


@pytest.fixture
def plane(tmp_path: Path, pki: Pki) -> Iterator[tuple[DataPlaneSpec, Path, DataPlaneClient]]:
    require_fuse()
    (tmp_path / "mnt").mkdir()
    spec, run_dir = _spec(tmp_path, pki), tmp_path / "m" / "dataplane"
    client, _state = spawn(spec, run_dir)
    yield spec, run_dir, client
    client.close()
    found = find_running(spec, run_dir)
    if found is not None:
        found[0].shutdown()
        found[0].close()
    pid = read_pid(run_dir)
    deadline = time.monotonic() + 10
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not running(pid), "the data plane exits when asked"


def test_a_call_without_the_right_token_is_refused(plane) -> None:  # type: ignore[no-untyped-def]
    _spec_, run_dir, client = plane
    ctl, _fd = socket_names(run_dir)
    with grpc.insecure_channel(f"unix-abstract:{ctl}") as channel:
        stub = dp_grpc.DataPlaneStub(channel)
        for meta in ((), (("x-dataplane-token", "0" * 64),)):
            with pytest.raises(grpc.RpcError) as e:
                stub.GetState(dp.Empty(), metadata=meta, timeout=5)
            assert e.value.code() is grpc.StatusCode.UNAUTHENTICATED
            assert "token" in (e.value.details() or "")
    assert (run_dir / "token").stat().st_mode & 0o077 == 0, "the token is the owner's only"
    assert client.get_state().pid == read_pid(run_dir)


def test_a_connection_handed_over_with_a_wrong_token_is_refused(plane) -> None:  # type: ignore[no-untyped-def]
    _spec_, run_dir, _client = plane
    _ctl, fd = socket_names(run_dir)
    a, b = socket.socketpair()
    with a, b, pytest.raises(HandoffError, match="refused"):
        hand_off(fd, "not-the-token", a, ("10.0.0.9", 1234))


def test_the_data_plane_outlives_its_client_and_is_found_again(plane, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec, run_dir, client = plane
    client.become_primary("g1", ("g1",), False, 123.0)
    assert client.role.value == "primary" and client.state.mounts == 1
    (tmp_path / "mnt" / "f").write_text("through the mount")
    pid = client.state.pid
    client.close()  # the agent goes away

    found = find_running(spec, run_dir)
    assert found is not None
    again, state = found
    assert state.pid == pid and state.role == dp.DataPlaneState.PRIMARY
    assert state.primary_since == 123.0 and list(state.history) == ["g1"]
    assert (tmp_path / "m" / "copy" / "0" / "f").read_text() == "through the mount"
    # connect() adopts it rather than starting a second one for the same module.
    third, _st, adopted = connect(spec, run_dir)
    assert adopted and third.state.pid == pid
    third.close()
    again.stop_primary()
    assert again.role.value == "none" and not os.path.ismount(tmp_path / "mnt")
    again.close()


def test_a_second_data_plane_for_the_same_module_does_not_start(plane) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    _spec_, run_dir, client = plane
    r = subprocess.run([sys.executable, "-m", "node_agent.dataplane", str(run_dir)],
                       capture_output=True, text=True, timeout=30)  # fmt: skip
    assert r.returncode != 0 and "in use" in r.stderr, r.stderr
    assert client.get_state().pid == read_pid(run_dir)


def test_settings_changed_while_the_agent_was_down_replace_an_idle_data_plane(
    plane, pki: Pki, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    spec, run_dir, client = plane
    old = client.state.pid
    changed = DataPlaneSpec(**{**spec.__dict__, "mode": "second"})
    new, state, adopted = connect(changed, run_dir)
    assert not adopted and state.pid != old
    deadline = time.monotonic() + 10
    while running(old) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not running(old), "the old data plane was stopped"
    assert state.spec_digest == changed.digest()
    new.shutdown()
    new.close()


def test_a_refused_role_change_names_the_reason(plane, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _spec_, _run_dir, client = plane
    client.become_primary("g1", ("g1",), False, 0.0)
    with pytest.raises(DataPlaneError, match="still primary"):
        client.become_secondary(("g1",))
    client.stop_primary()


def test_a_data_plane_of_another_major_protocol_is_replaced(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An agent cannot drive a data plane of another major protocol (docs/upgrade.md): it
    kills it and starts its own, saying why."""
    import logging
    import shutil

    from node_agent.dataplane import supervisor
    from node_agent.protocol import PROTOCOL

    require_fuse()
    (tmp_path / "mnt").mkdir()
    future = tmp_path / "future"  # a build of the next major protocol
    for pkg in ("node_agent", "protos"):
        shutil.copytree(supervisor.CODE_ROOT / pkg, future / pkg,
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    protocol_py = future / "node_agent" / "protocol.py"
    ours = f"PROTOCOL = Protocol({PROTOCOL.major}, {PROTOCOL.minor})"
    assert ours in protocol_py.read_text()
    protocol_py.write_text(protocol_py.read_text().replace(
        ours, f"PROTOCOL = Protocol({PROTOCOL.major + 1}, 0)"))  # fmt: skip
    spec, run_dir = _spec(tmp_path, pki), tmp_path / "m" / "dataplane"
    this_build = supervisor.CODE_ROOT
    monkeypatch.setattr(supervisor, "CODE_ROOT", future)  # which code the data plane runs
    old, old_state = spawn(spec, run_dir)
    old.close()
    assert old_state.protocol_major == PROTOCOL.major + 1
    monkeypatch.setattr(supervisor, "CODE_ROOT", this_build)
    with caplog.at_level(logging.ERROR, logger="node_agent.dataplane.supervisor"):
        new, state, adopted = connect(spec, run_dir)
    try:
        assert not adopted and state.pid != old_state.pid
        assert (state.protocol_major, state.protocol_minor) == (PROTOCOL.major, PROTOCOL.minor)
        assert f"speaks protocol {PROTOCOL.major + 1}.0, incompatible" in caplog.text
        assert not running(old_state.pid), "the data plane of the other protocol was killed"
    finally:
        new.shutdown()
        new.close()
    deadline = time.monotonic() + 10
    while running(state.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not running(state.pid)


def test_a_clean_stop_ends_the_event_stream_without_an_error(plane, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The agent listens to its data plane's events while it stops it (an agent stop, a
    module removed): the stream ends as the data plane's last act -- the agent hears
    "ended", not a cancelled call -- and the data plane's log has no ERROR or traceback
    for what is a normal stop."""
    spec, run_dir, client = plane
    client.become_primary("g1", ("g1",), False, 1.0)
    ended: list[str] = []
    heard = threading.Event()
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        listener, _state = find_running(spec, run_dir) or (None, None)
        assert listener is not None
        listener.on_lost = lambda why: (ended.append(why), heard.set())
        opened = threading.Event()  # the first event: the data plane has the subscriber
        listener.on_state = opened.set
        listener.listen(loop)
        assert opened.wait(10), "the event stream opened"
        pid = client.state.pid
        client.shutdown()
        assert not running(pid)
        assert heard.wait(10), "the agent is told the stream ended"
        assert ended == ["its event stream ended"], ended
        listener.close()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(5)
    text = (run_dir / "dataplane.log").read_text()
    assert "data plane of web stopped" in text
    assert " ERROR " not in text and "Traceback" not in text, text
