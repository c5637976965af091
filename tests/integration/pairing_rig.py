"""One real `mirrorpair-agent` process without a configuration, on localhost, for the
pairing tests (the two-server version in namespaces is tests/integration/setup_site.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc

from protos import mirrorpair_pb2_grpc as pb_grpc
from protos.security.credentials import channel_credentials, server_name

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UnpairedAgent:
    def __init__(self, root: Path, *, mdns: bool = False) -> None:
        self.root = Path(root)
        self.state_dir = self.root / "state"
        self.config = self.root / "cluster.toml"
        self.address = f"127.0.0.1:{free_port()}"
        self.log_path = self.root / "agent.log"
        self.mdns = mdns
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        env = {**os.environ, "MIRRORPAIR_MDNS": "1" if self.mdns else "0"}
        self.root.mkdir(parents=True, exist_ok=True)
        offset = len(self.log())
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "node_agent.main", "--config", str(self.config),
                 "--state-dir", str(self.state_dir), "--listen", self.address],
                stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while "ready on" not in self.log()[offset:]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the agent did not start:\n{self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def code(self) -> str:
        return (self.state_dir / "pairing-code").read_text().strip()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def agent_stub(self, ca: Path, cert: Path | None, key: Path | None, node: str = "node1"):
        """(channel, AgentStub) over TLS with these files (not checked here: a rogue
        certificate must reach the agent); the caller closes the channel."""
        creds = grpc.ssl_channel_credentials(
            root_certificates=Path(ca).read_bytes(),
            private_key=Path(key).read_bytes() if key else None,
            certificate_chain=Path(cert).read_bytes() if cert else None,
        )
        options = [("grpc.ssl_target_name_override", server_name(node))]
        channel = grpc.secure_channel(self.address, creds, options=options)
        return channel, pb_grpc.AgentStub(channel)

    def pairing_stub(self, ca: Path, cert: Path, key: Path, node: str = "node1"):
        creds = channel_credentials(ca, cert, key)
        options = [("grpc.ssl_target_name_override", server_name(node))]
        channel = grpc.secure_channel(self.address, creds, options=options)
        return channel, pb_grpc.PairingStub(channel)
