"""The agent's own files in its state directory (``--state-dir``, /var/lib/mirrorpair):

    tls/ca.pem, tls/node.pem, tls/node.key   installed by pairing (the cluster's CA)
    tls/pairing.pem, tls/pairing.key         self-signed, served while pairing is open
    pairing.json                             cluster name and node id once paired
    pairing-code                             present = pairing is open (0600)
    data/                                    modules' data (a config without data_dir)

Every file is written whole (temporary file, fsync, rename). ``pairing.json`` is removed
first and written last: an agent killed while its identity is installed is not "paired"
afterwards, and its code (deleted only after) still works to pair it again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from node_agent.config.store import atomic_write
from node_agent.host.pairing_gate import new_code

PAIRING_NAME = "mirrorpair-pairing"  # the DNS name of the self-signed pairing certificate


@dataclass(frozen=True)
class Paired:
    cluster: str
    node_id: str


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the certificate (DER), hex: what mDNS advertises and the server prints."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


class StateDir:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.tls = self.root / "tls"
        self.ca = self.tls / "ca.pem"
        self.cert = self.tls / "node.pem"
        self.key = self.tls / "node.key"
        self.pairing_cert = self.tls / "pairing.pem"
        self.pairing_key = self.tls / "pairing.key"
        self.paired_file = self.root / "pairing.json"
        self.code_file = self.root / "pairing-code"

    @staticmethod
    def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data, mode)

    # ----- paired or not ---------------------------------------------------------
    def paired(self) -> Paired | None:
        try:
            data = json.loads(self.paired_file.read_text())
            return Paired(str(data["cluster"]), str(data["node_id"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def install_identity(
        self, paired: Paired, ca_pem: bytes, cert_pem: bytes, key_pem: bytes
    ) -> None:
        # Not paired while the files change: a crash in between leaves a node that is not
        # paired and whose code still works (a re-pairing too), never a mixed identity.
        self.paired_file.unlink(missing_ok=True)
        self._write(self.key, key_pem, 0o600)
        self._write(self.cert, cert_pem)
        self._write(self.ca, ca_pem)
        record = {"cluster": paired.cluster, "node_id": paired.node_id,
                  "paired_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}  # fmt: skip
        self._write(self.paired_file, json.dumps(record, indent=1).encode())

    # ----- the pairing code: its file's presence means pairing is open ------------
    def code(self) -> str | None:
        try:
            return self.code_file.read_text().strip() or None
        except OSError:
            return None

    def open_pairing(self) -> str:
        """A new code (pairing opened, or reopened by the local command)."""
        code = new_code()
        self._write(self.code_file, f"{code}\n".encode(), 0o600)
        return code

    def close_pairing(self) -> None:
        self.code_file.unlink(missing_ok=True)

    # ----- the self-signed certificate served while pairing is open ----------------
    def pairing_identity(self) -> tuple[bytes, bytes]:
        """(cert PEM, key PEM), created once: its fingerprint stays what was printed."""
        try:
            return self.pairing_cert.read_bytes(), self.pairing_key.read_bytes()
        except OSError:
            pass
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, PAIRING_NAME)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(PAIRING_NAME)]), False)
            # A CA flag lets a client use this very certificate as its trust root.
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        self._write(self.pairing_key, key_pem, 0o600)
        self._write(self.pairing_cert, cert_pem)
        return cert_pem, key_pem
