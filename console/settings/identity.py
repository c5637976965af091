"""The console's own PKI for one cluster, on the desk PC (DESIGN §7):

    <config>/mirrorpair/<cluster>/ca.pem, ca.key           the cluster CA (key encrypted)
    <config>/mirrorpair/<cluster>/console.pem, console.key  the console's administrator
                                                           certificate (key encrypted)

Both private keys are encrypted with the cluster's passphrase, which lives in the OS
keyring (``SecretStore``) or, with no keyring, only in this session's memory: the
console never writes a private key or a secret in plain text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from console.client.credentials import TlsIdentity
from console.setup.plan import is_ip
from protos.security.ca import (
    CA_CERT_FILE,
    TlsError,
    create_ca,
    issue_certificate,
    load_ca,
    sign_certificate,
    subject_alt_names,
)
from protos.security.roles import Role

CONSOLE_NAME = "console"


@dataclass(frozen=True)
class ClusterPki:
    directory: Path
    passphrase: str

    @property
    def identity(self) -> TlsIdentity:
        d = self.directory
        return TlsIdentity(d / CA_CERT_FILE, d / f"{CONSOLE_NAME}.pem", d / f"{CONSOLE_NAME}.key")

    def exists(self) -> bool:
        return all(p.exists() for p in (self.identity.ca, self.identity.cert, self.identity.key))

    def ensure(self, cluster: str) -> TlsIdentity:
        """Create the CA and the console's certificate where they do not exist. An
        existing CA is never replaced (servers paired with it would be orphaned): half
        of one (its key or certificate alone) is an error naming the file."""
        secret = self.passphrase.encode()
        ca_files = (self.identity.ca, self.directory / "ca.key")
        if not any(p.exists() for p in ca_files):
            create_ca(self.directory, cluster, passphrase=secret)
        elif not all(p.exists() for p in ca_files):
            missing = next(p for p in ca_files if not p.exists())
            raise TlsError(f"the cluster's CA is incomplete: {missing} is missing")
        if not (self.identity.cert.exists() and self.identity.key.exists()):
            issue_certificate(
                self.directory, CONSOLE_NAME, self.directory, server=False, force=True,
                role=Role.ADMINISTRATOR, passphrase=secret, ca_passphrase=secret,
            )  # fmt: skip
        return self.identity

    def ca_key(self) -> object:
        """The CA's key, decrypted (TlsError naming the file when it cannot be)."""
        return load_ca(self.directory, self.passphrase.encode())[1]

    def ca_pem(self) -> bytes:
        return self.identity.ca.read_bytes()

    def sign_node(self, node_id: str, csr_pem: bytes, ips: list[str]) -> bytes:
        """The node certificate (role node) for a pairing server's CSR."""
        csr = x509.load_pem_x509_csr(csr_pem)
        if not csr.is_signature_valid:
            raise ValueError("the server's certificate request has a bad signature")
        ca_cert, ca_key = load_ca(self.directory, self.passphrase.encode())
        good_ips = [ip for ip in ips if is_ip(ip)]
        cert = sign_certificate(
            ca_cert, ca_key, node_id, csr.public_key(), role=Role.NODE,
            sans=subject_alt_names(node_id, good_ips, [], server=True, localhost=True),
            usages=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        )  # fmt: skip
        return cert.public_bytes(serialization.Encoding.PEM)
