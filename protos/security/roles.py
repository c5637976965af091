"""Certificate roles (DESIGN §7) and what each may ask an agent.

The role is the certificate subject's OU (``OU=administrator``), visible with
``openssl x509 -noout -subject``. An agent reads it from the verified client certificate
of each call; the table below is the one place that says who may do what.
"""

from __future__ import annotations

import functools
from enum import IntEnum

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from protos import mirrorpair_pb2 as pb


class Role(IntEnum):
    """Ordered: a higher role may do everything a lower one may."""

    NONE = 0  # no verified certificate
    NODE = pb.ROLE_NODE  # an agent's own certificate: watch and operate (the server's CLI)
    OPERATOR = pb.ROLE_OPERATOR
    ADMINISTRATOR = pb.ROLE_ADMINISTRATOR

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            role = cls[text.strip().upper()]
        except KeyError:
            role = cls.NONE
        if role is cls.NONE:
            allowed = ", ".join(r.label for r in ROLES)
            raise ValueError(f"unknown role {text!r}; allowed: {allowed}")
        return role


ROLES = (Role.NODE, Role.OPERATOR, Role.ADMINISTRATOR)

# A node certificate may do what an operator may: it is not an administrator.
_RANK = {Role.NONE: 0, Role.NODE: 1, Role.OPERATOR: 1, Role.ADMINISTRATOR: 2}

# What each command needs (the rest of the API: see RPC_ROLES).
COMMAND_ROLES: dict[int, Role] = {
    pb.COMMAND_START: Role.OPERATOR,
    pb.COMMAND_STOP: Role.OPERATOR,
    pb.COMMAND_RESTART: Role.OPERATOR,
    pb.COMMAND_STOPSTART: Role.OPERATOR,
    pb.COMMAND_SWAP: Role.OPERATOR,
    pb.COMMAND_MIGRATE: Role.OPERATOR,
    pb.COMMAND_PRIM: Role.ADMINISTRATOR,
    pb.COMMAND_FORCESTOP: Role.ADMINISTRATOR,
    pb.COMMAND_SECOND: Role.ADMINISTRATOR,  # may quarantine this node's changes
}

# Agent RPCs by the role they need; not listed = any verified certificate (watching).
RPC_ROLES: dict[str, Role] = {
    "AdoptVm": Role.ADMINISTRATOR,
    "PrepareConfig": Role.ADMINISTRATOR,
    "CommitConfig": Role.ADMINISTRATOR,
    "AbortConfig": Role.ADMINISTRATOR,
    "ProbeHost": Role.ADMINISTRATOR,
}


def allows(role: Role, needed: Role) -> bool:
    return _RANK[role] >= _RANK[needed]


def refusal(role: Role, needed: Role, what: str, who: str) -> str:
    """The message of a refused call: it names the missing role."""
    return f"{what} needs the {needed.label} role; certificate {who!r} has the role {role.label}"


def role_subject(name: str, role: Role) -> x509.Name:
    """The subject of a certificate of ``role`` for ``name``."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "MirrorPair"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role.label),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )


def role_of(cert: x509.Certificate) -> Role:
    """The role a certificate carries. One issued before roles existed has none: a
    server certificate is then a node's, any other an operator's (never more)."""
    for attr in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME):
        value = attr.value if isinstance(attr.value, str) else attr.value.decode()
        try:
            return Role.parse(value)
        except ValueError:
            continue
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return Role.OPERATOR
    return Role.NODE if ExtendedKeyUsageOID.SERVER_AUTH in usages else Role.OPERATOR


@functools.lru_cache(maxsize=64)
def role_of_pem(pem: bytes) -> Role:
    """``role_of`` a PEM certificate (cached: asked on every call of a client)."""
    try:
        return role_of(x509.load_pem_x509_certificate(pem))
    except ValueError:
        return Role.NONE
