"""Client TLS credentials for one cluster: the cluster CA, the console's certificate and
key. An encrypted key is decrypted in memory with a passphrase (from the keyring or asked
at run time) and never written back to disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography.hazmat.primitives import serialization

from protos.security.credentials import TlsError, channel_credentials


class PassphraseNeeded(TlsError):
    """The key is encrypted and no (or a wrong) passphrase was given."""


@dataclass(frozen=True)
class TlsIdentity:
    ca: Path
    cert: Path
    key: Path


def key_is_encrypted(path: Path) -> bool:
    try:
        head = Path(path).read_bytes()[:200]
    except OSError:
        return False  # the credential check below names the missing file
    return b"ENCRYPTED" in head


def build_credentials(
    identity: TlsIdentity, passphrase: str | None = None
) -> grpc.ChannelCredentials:
    """grpc channel credentials; TlsError (naming the file) when something is wrong."""
    if not key_is_encrypted(identity.key):
        return channel_credentials(identity.ca, identity.cert, identity.key)
    if not passphrase:
        raise PassphraseNeeded(
            f"key {identity.key} is encrypted: enter its passphrase (Edit cluster…)"
        )
    try:
        key = serialization.load_pem_private_key(
            Path(identity.key).read_bytes(), password=passphrase.encode()
        )
    except (ValueError, TypeError):
        raise PassphraseNeeded(f"wrong passphrase for key {identity.key}") from None
    plain = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        ca_pem = Path(identity.ca).read_bytes()
        cert_pem = Path(identity.cert).read_bytes()
    except OSError as e:
        raise TlsError(f"cannot read {e.filename}: {e.strerror}") from None
    return grpc.ssl_channel_credentials(
        root_certificates=ca_pem, private_key=plain, certificate_chain=cert_pem
    )
