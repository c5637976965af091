"""The cluster certificate authority (DESIGN §7: mTLS everywhere).

``create_ca`` makes a self-signed CA (``ca.pem`` / ``ca.key``) for one cluster;
``issue_certificate`` signs a node certificate (serverAuth + clientAuth) or a
console/admin certificate (clientAuth only). EC P-256 keys: small and fast.

Server certificates always carry the DNS name ``mirrorpair-<name>`` (see
``server_name``): clients dial a node by any address and check that name via
``grpc.ssl_target_name_override``, so a certificate does not have to list every
address the node is reachable at.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from protos.security.roles import Role, role_subject

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
VALIDITY_DAYS = 3650  # an expired certificate takes the whole cluster down: be generous
_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class TlsError(Exception):
    """A certificate or key file is missing, unreadable, invalid or does not match."""


def server_name(node_id: str) -> str:
    """The DNS name every server certificate of ``node_id`` carries and clients verify."""
    return f"mirrorpair-{node_id}"


def create_ca(
    dir: str | os.PathLike[str],
    cluster_name: str,
    *,
    force: bool = False,
    passphrase: bytes | None = None,
) -> tuple[Path, Path]:
    """Create the cluster CA in ``dir``; returns (cert path, key path).

    Refuses to overwrite an existing CA unless ``force``: a new CA orphans every
    certificate issued by the old one. With ``passphrase`` the key is written encrypted
    (the console's CA: no private key in plain text on the desk PC).
    """
    if not cluster_name.strip():
        raise ValueError("the cluster name must not be empty")
    directory = Path(dir)
    cert_path, key_path = directory / CA_CERT_FILE, directory / CA_KEY_FILE
    _refuse_overwrite([cert_path, key_path], force)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "MirrorPair"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, cluster_name[:64]),
            x509.NameAttribute(NameOID.COMMON_NAME, f"MirrorPair CA {cluster_name}"[:64]),
        ]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))  # tolerate clock skew between nodes
        .not_valid_after(now + dt.timedelta(days=VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    _write(key_path, key_pem(key, passphrase), 0o600, force)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644, force)
    return cert_path, key_path


def issue_certificate(
    ca_dir: str | os.PathLike[str],
    name: str,
    out_dir: str | os.PathLike[str],
    *,
    ips: Iterable[str] = (),
    dns: Iterable[str] = (),
    server: bool = True,
    client: bool = True,
    localhost: bool = True,
    force: bool = False,
    days: int = VALIDITY_DAYS,
    role: Role | None = None,
    passphrase: bytes | None = None,
    ca_passphrase: bytes | None = None,
) -> tuple[Path, Path]:
    """Sign a certificate with CN ``name``; writes ``<out_dir>/<name>.pem`` and ``.key``.

    Node certificates (``server=True``) get serverAuth, the DNS name
    ``server_name(name)``, ``dns`` and ``ips`` as SANs, and with ``localhost``
    also localhost / 127.0.0.1 / ::1 (two agents on one machine, local tools).
    ``client`` adds clientAuth: a console or admin certificate is
    ``server=False, client=True``. ``role`` (the subject's OU) defaults to ``NODE`` for
    a server certificate and ``ADMINISTRATOR`` for a client one (the first console of a
    cluster administers it). Returns (cert path, key path).
    """
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"certificate name must be 1-64 of A-Z a-z 0-9 _ . -, got {name!r}")
    if not (server or client):
        raise ValueError("a certificate must be for a server, a client or both")
    ca_cert, ca_key = load_ca(ca_dir, ca_passphrase)
    out = Path(out_dir)
    cert_path, key_path = out / f"{name}.pem", out / f"{name}.key"
    _refuse_overwrite([cert_path, key_path], force)

    sans = subject_alt_names(name, ips, dns, server=server, localhost=localhost)
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] * server + [ExtendedKeyUsageOID.CLIENT_AUTH] * client
    key = ec.generate_private_key(ec.SECP256R1())
    if role is None:
        role = Role.NODE if server else Role.ADMINISTRATOR
    cert = sign_certificate(
        ca_cert, ca_key, name, key.public_key(), role=role, sans=sans, usages=usages, days=days
    )
    out.mkdir(parents=True, exist_ok=True)
    _write(key_path, key_pem(key, passphrase), 0o600, force)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644, force)
    return cert_path, key_path


def sign_certificate(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    name: str,
    public_key: PublicKeyTypes,
    *,
    role: Role,
    sans: list[x509.GeneralName],
    usages: list[x509.ObjectIdentifier],
    days: int = VALIDITY_DAYS,
) -> x509.Certificate:
    """A leaf certificate for ``public_key`` (CN ``name``, OU ``role``) signed by the CA."""
    now = _now()
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(role_subject(name, role))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        # A leaf outliving its CA would only fail later and more confusingly.
        .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key),  # type: ignore[arg-type]
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def load_ca(
    ca_dir: str | os.PathLike[str], passphrase: bytes | None = None
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA certificate and key from ``ca_dir``, with errors naming the file."""
    cert_path, key_path = Path(ca_dir) / CA_CERT_FILE, Path(ca_dir) / CA_KEY_FILE
    cert = load_certificate(cert_path, "CA certificate")
    key = load_private_key(key_path, "CA key", passphrase)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TlsError(f"CA key {key_path} is not an EC key")
    if public_key_der(cert.public_key()) != public_key_der(key.public_key()):
        raise TlsError(f"CA key {key_path} does not belong to CA certificate {cert_path}")
    return cert, key


def read_file(path: str | os.PathLike[str], what: str) -> bytes:
    """The bytes of a TLS file; a missing or unreadable file raises TlsError naming it."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise TlsError(f"{what} file {path} does not exist") from None
    except OSError as e:
        raise TlsError(f"cannot read {what} file {path}: {e.strerror or e}") from None


def load_certificate(path: str | os.PathLike[str], what: str = "certificate") -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(read_file(path, what))
    except ValueError as e:
        raise TlsError(f"{what} file {path} is not a PEM certificate: {e}") from None


def load_private_key(
    path: str | os.PathLike[str], what: str = "key", passphrase: bytes | None = None
) -> PrivateKeyTypes:
    data = read_file(path, what)
    try:
        return serialization.load_pem_private_key(data, password=passphrase)
    except TypeError:
        if passphrase:
            raise TlsError(f"{what} file {path} is not encrypted") from None
        raise TlsError(f"{what} file {path} is encrypted: its passphrase is needed") from None
    except ValueError as e:
        if passphrase and b"ENCRYPTED" in data:
            raise TlsError(f"wrong passphrase for {what} file {path}") from None
        raise TlsError(f"{what} file {path} is not a PEM private key: {e}") from None


def subject_alt_names(
    name: str, ips: Iterable[str], dns: Iterable[str], *, server: bool, localhost: bool
) -> list[x509.GeneralName]:
    dns_names = [server_name(name)] if server else []
    ip_addrs = []
    for ip in ips:
        try:
            ip_addrs.append(ipaddress.ip_address(ip))
        except ValueError:
            raise ValueError(f"not an IP address: {ip!r}") from None
    if server and localhost:
        dns_names.append("localhost")
        ip_addrs += [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    dns_names += list(dns)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dict.fromkeys(dns_names)]
    return sans + [x509.IPAddress(a) for a in dict.fromkeys(ip_addrs)]


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def public_key_der(public_key: PublicKeyTypes) -> bytes:
    """For comparing a certificate's public key with a private key's."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_pem(key: ec.EllipticCurvePrivateKey, passphrase: bytes | None = None) -> bytes:
    """PKCS#8 PEM, encrypted when a passphrase is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _refuse_overwrite(paths: list[Path], force: bool) -> None:
    # Check every file first so a refusal never leaves a half-written pair.
    if force:
        return
    for p in paths:
        if p.exists():
            raise FileExistsError(f"{p} already exists; refusing to overwrite it (use force)")


def _write(path: Path, data: bytes, mode: int, force: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    fd = os.open(path, flags, mode)  # created with its final mode: a key is never world-readable
    with os.fdopen(fd, "wb") as f:
        os.fchmod(fd, mode)  # an overwritten (force) file would keep its old mode
        f.write(data)
