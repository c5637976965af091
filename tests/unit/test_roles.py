"""Certificate roles (protos/security/roles.py, the shared library's contract)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from protos import mirrorpair_pb2 as pb
from protos.security.ca import create_ca, issue_certificate, load_certificate
from protos.security.roles import (
    COMMAND_ROLES,
    ROLES,
    Role,
    allows,
    refusal,
    role_of,
    role_of_pem,
)


def test_issued_certificates_carry_their_role(tmp_path: Path) -> None:
    create_ca(tmp_path, "site")
    cases = {
        "node1": ({}, Role.NODE),
        "desk": ({"server": False}, Role.ADMINISTRATOR),
        "guard": ({"server": False, "role": Role.OPERATOR}, Role.OPERATOR),
    }
    for name, (kw, role) in cases.items():
        cert, _ = issue_certificate(tmp_path, name, tmp_path, **kw)
        assert role_of(load_certificate(cert)) is role
        assert role_of_pem(cert.read_bytes()) is role
        subject = load_certificate(cert).subject.rfc4514_string()
        assert f"OU={role.label}" in subject and f"CN={name}" in subject


def _legacy(server: bool) -> x509.Certificate:
    """A certificate issued before roles existed: CN only."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")])
    usage = [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    if server:
        usage.append(x509.oid.ExtendedKeyUsageOID.SERVER_AUTH)
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip


def test_a_certificate_without_a_role_is_never_an_administrator() -> None:
    assert role_of(_legacy(server=True)) is Role.NODE
    assert role_of(_legacy(server=False)) is Role.OPERATOR
    assert role_of_pem(b"not a certificate") is Role.NONE


def test_what_each_role_may_do() -> None:
    admin_only = {c for c, r in COMMAND_ROLES.items() if r is Role.ADMINISTRATOR}
    assert admin_only == {pb.COMMAND_PRIM, pb.COMMAND_FORCESTOP, pb.COMMAND_SECOND}
    assert set(COMMAND_ROLES) == set(pb.Command.values()) - {pb.COMMAND_UNSPECIFIED}
    for command, needed in COMMAND_ROLES.items():
        assert allows(Role.ADMINISTRATOR, needed)
        assert allows(Role.OPERATOR, needed) == (command not in admin_only)
        assert allows(Role.NODE, needed) == allows(Role.OPERATOR, needed)
        assert not allows(Role.NONE, needed)


def test_refusals_name_the_missing_role_and_parse_errors_the_allowed_ones() -> None:
    msg = refusal(Role.OPERATOR, Role.ADMINISTRATOR, "prim", "guard")
    assert msg == "prim needs the administrator role; certificate 'guard' has the role operator"
    assert Role.parse(" Operator ") is Role.OPERATOR
    with pytest.raises(ValueError, match="allowed: node, operator, administrator"):
        Role.parse("root")
    assert [r.label for r in ROLES] == ["node", "operator", "administrator"]
