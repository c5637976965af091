"""The protocol version agents speak, and whether two of them can work together (pure).

One number for everything two agents (or an agent and a data plane of another build)
exchange: heartbeats (protos/heartbeat.proto), the replication route and HELLO
(node_agent/replication/stream/route.py, wire.py) and the agent <-> data plane calls
(protos/dataplane.proto). The rule (docs/upgrade.md):

- the same **major** = compatible: a change within a major only adds protobuf fields
  (which the other side ignores) or things the other side is asked for only once it
  announced it understands them (heartbeat ``features``);
- another major = incompatible: the peer's heartbeats are refused (as a wrong secret
  would be) and its replication connections too, each with a log line naming both
  versions, and the mismatch is shown. Upgrading across a major is no rolling upgrade.

Agents before the protocol was versioned (1.0) announce nothing: a peer that announces
no protocol speaks 1.0.

Bump ``PROTOCOL`` here, and only here: the minor for a compatible addition, the major
for a change an older agent would misread.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, order=True)
class Protocol:
    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


# 1.1: heartbeats and status carry the protocol and the build; an agent leaving its
# modules running asks its peer to wait for the next one (heartbeat leaving_ms).
PROTOCOL = Protocol(1, 1)
UNVERSIONED = Protocol(1, 0)  # what a peer that announces no protocol speaks


def announced(major: int, minor: int) -> Protocol:
    """The protocol a peer announced in its fields; major 0 (fields absent: a build
    before 1.1) is 1.0."""
    return UNVERSIONED if major == 0 else Protocol(major, minor)


def compatible(ours: Protocol, theirs: Protocol) -> bool:
    return ours.major == theirs.major


class Verdict(StrEnum):
    UNKNOWN = "unknown"  # the peer was not heard
    SAME = "same"  # the same protocol and build
    OTHER_BUILD = "other build"  # compatible: they work together, the difference is shown
    INCOMPATIBLE = "incompatible"  # refused


@dataclass(frozen=True)
class PeerBuild:
    """What a peer announced: its protocol and its build ("" = it does not say)."""

    protocol: Protocol
    version: str


@dataclass(frozen=True)
class Compatibility:
    verdict: Verdict
    message: str  # for the operator; "" when nothing is to be said (SAME, UNKNOWN)


def judge(ours: PeerBuild, theirs: PeerBuild | None) -> Compatibility:
    """Whether this agent (``ours``) and its peer (``theirs``, None = never heard) work
    together, and what the operator is told."""
    if theirs is None:
        return Compatibility(Verdict.UNKNOWN, "")
    their_build = theirs.version or "an older build that does not say its version"
    if not compatible(ours.protocol, theirs.protocol):
        return Compatibility(
            Verdict.INCOMPATIBLE,
            f"the peer speaks protocol {theirs.protocol} ({their_build}), incompatible "
            f"with this agent's {ours.protocol} ({ours.version}): its heartbeats and "
            "replication are refused (docs/upgrade.md)",
        )
    if theirs == ours:
        return Compatibility(Verdict.SAME, "")
    return Compatibility(
        Verdict.OTHER_BUILD,
        f"the peer runs {their_build} (protocol {theirs.protocol}), this agent "
        f"{ours.version} (protocol {ours.protocol}): compatible",
    )
