"""Pairing a real agent from the console's client (issue 12, points 1-4): an agent
without configuration serves only the pairing calls; wrong codes cost attempts, then a
cool-down; once paired it accepts only its cluster's CA and refuses pairing; roles are
enforced; a kill between the two pairing calls loses nothing; the local command
reopens pairing."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from console.client.discovery import fingerprint_of, served_certificate
from console.client.setup_client import PAIRING_NAME, SetupClient
from console.settings.secrets import SecretStore
from console.setup.backend import PairingRefused, SetupError
from protos import mirrorpair_pb2 as pb
from protos import mirrorpair_pb2_grpc as pb_grpc
from protos.security.ca import create_ca, issue_certificate
from protos.security.pairing_proof import pairing_proof
from protos.security.roles import Role
from tests.integration.pairing_rig import REPO, UnpairedAgent
from tests.keyrings import MemoryKeyring


@pytest.fixture
def agent(tmp_path: Path):
    a = UnpairedAgent(tmp_path / "server")
    a.start()
    yield a
    a.stop()


def desk(tmp_path: Path) -> SetupClient:
    return SetupClient(tmp_path / "desk", SecretStore(MemoryKeyring()), cluster_name="site")


def run(coro):
    return asyncio.run(coro)


def test_an_unconfigured_agent_opens_pairing_and_answers_nothing_else(agent, tmp_path) -> None:
    code = agent.code()
    assert code in agent.log()  # printed (and logged) for the person at the server
    found = run(desk(tmp_path).reach(agent.address))
    assert found.pairing_open and not found.paired and found.hostname
    pem = run(served_certificate(agent.address))
    creds = grpc.ssl_channel_credentials(root_certificates=pem)
    options = [("grpc.ssl_target_name_override", PAIRING_NAME)]
    with grpc.secure_channel(agent.address, creds, options=options) as channel:
        with pytest.raises(grpc.RpcError) as e:
            pb_grpc.AgentStub(channel).GetStatus(pb.GetStatusRequest(), timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "pairing is open" in e.value.details()
        info = pb_grpc.PairingStub(channel).GetHostInfo(pb.HostInfoRequest(), timeout=5)
        assert info.pairing_open and not info.paired


def test_wrong_codes_cost_attempts_then_a_cool_down_refuses_even_the_right_one(
    agent, tmp_path
) -> None:
    client = desk(tmp_path)
    server = run(client.reach(agent.address))
    left = []
    for _ in range(4):
        with pytest.raises(PairingRefused) as e:
            run(client.pair(server, "node1", "AAAA-AAAA-AAAA"))
        left.append(e.value.attempts_left)
    assert left == [4, 3, 2, 1]
    with pytest.raises(PairingRefused) as e:
        run(client.pair(server, "node1", "AAAA-AAAA-AAAA"))
    assert e.value.cooldown_s == 60
    with pytest.raises(PairingRefused) as e:
        run(client.pair(server, "node1", agent.code()))
    assert 0 < e.value.cooldown_s <= 60 and "wait" in str(e.value)
    assert not (agent.state_dir / "pairing.json").exists()


def test_after_pairing_only_the_clusters_certificates_get_in(agent, tmp_path) -> None:
    client = desk(tmp_path)
    facts = run(client.pair(run(client.reach(agent.address)), "node1", agent.code()))
    assert facts.node_id == "node1" and facts.config_version == 0
    pki = client.pki()
    ca, console = pki.identity.ca, pki.identity
    # The server's certificate came from the console's CA; its key never left it.
    node_cert = x509.load_pem_x509_certificate((agent.state_dir / "tls/node.pem").read_bytes())
    node_cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.read_bytes()))
    assert not (agent.state_dir / "pairing-code").exists()
    for path in (console.key, pki.directory / "ca.key"):
        assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()

    # No certificate, or one from another CA: refused in the handshake.
    rogue = tmp_path / "rogue"
    create_ca(rogue, "rogue")
    issue_certificate(rogue, "admin", rogue, server=False)
    for cert, key in ((None, None), (rogue / "admin.pem", rogue / "admin.key")):
        channel, stub = agent.agent_stub(ca, cert, key)
        with channel, pytest.raises(grpc.RpcError) as e:
            stub.GetStatus(pb.GetStatusRequest(), timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE

    # The console's administrator certificate (its key decrypted in memory only).
    secret = pki.passphrase.encode()
    plain = tmp_path / "plain"
    issue_certificate(pki.directory, "admin2", plain, server=False, ca_passphrase=secret)
    issue_certificate(pki.directory, "op", plain, server=False, role=Role.OPERATOR,
                      ca_passphrase=secret)  # fmt: skip
    channel, stub = agent.agent_stub(ca, plain / "admin2.pem", plain / "admin2.key")
    with channel:
        status = stub.GetStatus(pb.GetStatusRequest(), timeout=5)
        assert not status.configured and status.node_id == "node1"
        assert status.client_role == pb.ROLE_ADMINISTRATOR
        pairing = pb_grpc.PairingStub(channel)
        with pytest.raises(grpc.RpcError) as e:
            pairing.BeginPairing(pb.BeginPairingRequest(code=facts.hostname), timeout=5)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "pairing is closed" in e.value.details()
    # An operator may not prim, and is told which role it lacks; the node's own
    # certificate is no administrator either.
    node = (agent.state_dir / "tls/node.pem", agent.state_dir / "tls/node.key")
    for cert, key, role in ((plain / "op.pem", plain / "op.key", "operator"), (*node, "node")):
        channel, stub = agent.agent_stub(ca, cert, key)
        with channel, pytest.raises(grpc.RpcError) as e:
            stub.RunCommand(pb.CommandRequest(module="web", command=pb.COMMAND_PRIM), timeout=5)
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "prim needs the administrator role" in e.value.details()
        assert f"has the role {role}" in e.value.details()
    assert "refused prim from certificate op (role operator)" in agent.log()


def test_an_agent_killed_between_the_two_pairing_calls_pairs_again(agent, tmp_path) -> None:
    client = desk(tmp_path)
    server = run(client.reach(agent.address))
    pki = client.pki()
    pki.ensure("site")
    pem = run(served_certificate(agent.address))
    creds = grpc.ssl_channel_credentials(root_certificates=pem)
    options = [("grpc.ssl_target_name_override", PAIRING_NAME)]
    with grpc.secure_channel(agent.address, creds, options=options) as channel:
        pb_grpc.PairingStub(channel).BeginPairing(
            pb.BeginPairingRequest(code=pairing_proof(agent.code(), fingerprint_of(pem)),
                                   node_id="node2", cluster_name="site",
                                   ca_cert=pki.ca_pem()), timeout=5)  # fmt: skip
    code = agent.code()
    agent.kill()
    agent.start()
    assert agent.code() == code and not (agent.state_dir / "pairing.json").exists()
    facts = run(client.pair(server, "node2", code))
    assert facts.node_id == "node2"


def test_the_local_command_reopens_pairing_for_the_same_node_only(agent, tmp_path) -> None:
    client = desk(tmp_path)
    run(client.pair(run(client.reach(agent.address)), "node1", agent.code()))
    out = subprocess.run(
        [sys.executable, "-m", "node_agent.main", "--state-dir", str(agent.state_dir),
         "--open-pairing"], capture_output=True, text=True, cwd=REPO, check=True,
    ).stdout  # fmt: skip
    code = agent.code()
    assert f"code {code}" in out
    deadline = time.monotonic() + 10
    found = None
    while found is None or not found.pairing_open:
        assert time.monotonic() < deadline, agent.log()
        time.sleep(0.3)
        # Refused for a moment while the agent moves to its paired listener.
        with contextlib.suppress(SetupError):
            found = run(client.reach(agent.address))
    assert found.paired and found.cluster_name == "site"
    with pytest.raises(SetupError) as e:
        run(client.pair(found, "node2", code))
    assert "this server is node1" in str(e.value)
    assert run(client.pair(found, "node1", code)).node_id == "node1"


def test_a_ca_whose_passphrase_is_lost_is_refused_with_what_to_do(agent, tmp_path) -> None:
    """The desk's CA of an earlier session, its passphrase gone with that session (no
    keyring): pairing says so instead of failing somewhere deep."""
    earlier = desk(tmp_path)
    earlier.pki().ensure("site")
    later = desk(tmp_path)  # another session: another (empty) keyring
    server = run(later.reach(agent.address))
    with pytest.raises(SetupError) as e:
        run(later.pair(server, "node1", agent.code()))
    assert "cannot be used" in str(e.value) and "choose another cluster name" in str(e.value)
    assert not (agent.state_dir / "pairing.json").exists()


def test_removing_the_code_file_closes_pairing_and_the_local_command_reopens_it(
    agent, tmp_path
) -> None:
    """An unpaired agent whose code file is removed keeps running with pairing closed
    (it has no identity to serve anything else); `--open-pairing` opens it again."""
    client = desk(tmp_path)
    (agent.state_dir / "pairing-code").unlink()
    deadline = time.monotonic() + 10
    while "pairing closed: the pairing code file" not in agent.log():
        assert time.monotonic() < deadline, agent.log()  # it looks every second
        time.sleep(0.1)
    server = run(client.reach(agent.address))  # still serving after it noticed
    assert agent.proc is not None and agent.proc.poll() is None, agent.log()
    assert not server.paired
    with pytest.raises(PairingRefused) as e:
        run(client.pair(server, "node1", "AAAA-AAAA-AAAA"))
    assert "pairing is closed" in str(e.value)
    out = subprocess.run(
        [sys.executable, "-m", "node_agent.main", "--state-dir", str(agent.state_dir),
         "--open-pairing"], capture_output=True, text=True, cwd=REPO, check=True,
    ).stdout  # fmt: skip
    assert f"fingerprint: {server.fingerprint}" in out  # the certificate it serves
    assert run(client.pair(server, "node1", agent.code())).node_id == "node1"
