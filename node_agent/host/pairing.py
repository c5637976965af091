"""Pairing an agent with a cluster (DESIGN §7), over a ``StateDir``.

``begin`` checks the code and the request, makes the node's key (it never leaves the
server) and returns a CSR; ``complete`` checks the certificate the console signed
(issued by the CA of ``begin``, for that key, node role, the node's server name) and
installs CA, certificate and key, which closes pairing. An agent killed between the two
has nothing installed and its code still works: the console begins again.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from node_agent.config.model import NODE_IDS
from node_agent.config.table import NAME_RE
from node_agent.host.pairing_gate import CodeRefused, PairingGate
from node_agent.host.state import Paired, StateDir, fingerprint
from protos.security.ca import public_key_der, server_name
from protos.security.pairing_proof import pairing_proof
from protos.security.roles import Role, role_of

log = logging.getLogger(__name__)


class PairingClosed(Exception):
    """Pairing is not open on this agent."""


class BadPairingRequest(ValueError):
    """The request itself is wrong (unknown node id, not a CA, certificate mismatch)."""


@dataclass
class _Pending:
    key: ec.EllipticCurvePrivateKey
    ca_pem: bytes
    ca: x509.Certificate
    node_id: str
    cluster: str


class Pairing:
    def __init__(
        self, state: StateDir, gate: PairingGate | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        """``proof`` arguments below: ``pairing_proof(code, fingerprint of the pairing
        certificate)``, as the console computes it (protos/security/pairing_proof.py)."""
        self.state = state
        self.gate = gate or PairingGate()
        self._clock = clock
        self._pending: _Pending | None = None

    @property
    def open(self) -> bool:
        return self.state.code() is not None

    def _check_code(self, proof: str) -> None:
        code = self.state.code()
        if code is None:
            raise PairingClosed(
                "pairing is closed on this server: run `mirrorpair-agent --open-pairing` "
                "on it to pair it again"
            )
        served = fingerprint(self.state.pairing_identity()[0])
        self.gate.check(proof, pairing_proof(code, served), self._clock())

    def begin(
        self, proof: str, node_id: str, cluster: str, ca_pem: bytes, addresses: list[str]
    ) -> bytes:
        """The CSR (PEM) of a fresh key for ``node_id``; raises CodeRefused,
        PairingClosed or BadPairingRequest."""
        self._check_code(proof)
        if node_id not in NODE_IDS:
            raise BadPairingRequest(f"node_id must be node1 or node2, got {node_id!r}")
        if not NAME_RE.fullmatch(cluster):
            raise BadPairingRequest(
                f"cluster name must be 1-64 of A-Z a-z 0-9 _ . -, got {cluster!r}"
            )
        already = self.state.paired()
        if already is not None and already.node_id != node_id:
            raise BadPairingRequest(
                f"this server is {already.node_id} of cluster {already.cluster!r}: pair it "
                f"as {already.node_id}, or its modules' data would be taken for the other node's"
            )
        try:
            ca = x509.load_pem_x509_certificate(ca_pem)
            constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
        except (ValueError, x509.ExtensionNotFound):
            raise BadPairingRequest("ca_cert is not a PEM CA certificate") from None
        if not constraints.ca:
            raise BadPairingRequest("ca_cert is not a CA certificate (no CA flag)")
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id)]))
            .sign(key, hashes.SHA256())
        )
        self._pending = _Pending(key, ca_pem, ca, node_id, cluster)
        log.info("pairing begun as %s of cluster %r", node_id, cluster)
        return csr.public_bytes(serialization.Encoding.PEM)

    def complete(self, proof: str, cert_pem: bytes) -> str:
        """Install the signed certificate; returns its fingerprint. Closes pairing."""
        self._check_code(proof)
        pending = self._pending
        if pending is None:
            raise BadPairingRequest("no pairing begun on this server (it may have restarted)")
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
        except ValueError:
            raise BadPairingRequest("certificate is not a PEM certificate") from None
        _check_node_certificate(cert, pending)
        key_pem = pending.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        paired = Paired(pending.cluster, pending.node_id)
        self.state.install_identity(paired, pending.ca_pem, cert_pem, key_pem)
        self.state.close_pairing()
        self._pending = None
        log.info("paired as %s of cluster %r; pairing closed", paired.node_id, paired.cluster)
        return fingerprint(cert_pem)


def _check_node_certificate(cert: x509.Certificate, pending: _Pending) -> None:
    now = dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc - dt.timedelta(hours=1) <= now < cert.not_valid_after_utc:
        # Installed, it would close pairing and leave a server that cannot serve.
        raise BadPairingRequest(
            f"certificate is valid from {cert.not_valid_before_utc:%Y-%m-%d %H:%M} to "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, not now: check the clocks"
        )
    try:
        cert.verify_directly_issued_by(pending.ca)
    except (ValueError, TypeError, InvalidSignature):
        raise BadPairingRequest("certificate was not issued by the CA given to begin") from None
    if public_key_der(cert.public_key()) != public_key_der(pending.key.public_key()):
        raise BadPairingRequest("certificate is not for the key of this pairing's request")
    if role_of(cert) is not Role.NODE:
        raise BadPairingRequest(f"certificate has the role {role_of(cert).label}, not node")
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as e:
        raise BadPairingRequest(f"certificate lacks {e.oid.dotted_string}") from None
    if not {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(usages):
        raise BadPairingRequest("certificate must allow server and client authentication")
    wanted = server_name(pending.node_id)
    if wanted not in names.get_values_for_type(x509.DNSName):
        raise BadPairingRequest(f"certificate does not name {wanted}")


__all__ = ["BadPairingRequest", "CodeRefused", "Pairing", "PairingClosed"]
