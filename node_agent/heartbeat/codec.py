"""Heartbeat datagram wire format (DESIGN §4).

One UDP datagram carries one heartbeat::

    MAGIC (4 bytes, b"MPH1")
    HMAC-SHA256(secret, payload) (32 bytes)
    payload (a serialized ``heartbeat_pb2.Heartbeat``, the rest of the datagram)

The HMAC covers the payload only: the magic is a cheap filter for stray traffic
and a version tag (a new format gets a new magic). A datagram longer than
``MAX_DATAGRAM`` bytes is rejected before any hashing, and ``encode`` refuses to
produce one, so a peer never sends what the other side would drop.

The codec authenticates only; freshness (replays) is ``Liveness``' job, since it
needs per-link state.
"""

from __future__ import annotations

import hashlib
import hmac

from google.protobuf.message import DecodeError

from protos.heartbeat_pb2 import Heartbeat

MAGIC = b"MPH1"
MAC_LEN = 32  # SHA-256 digest size
HEADER_LEN = len(MAGIC) + MAC_LEN
# Below the 65507-byte UDP/IPv4 limit, with room to spare; real heartbeats are ~100 B/module.
MAX_DATAGRAM = 60000


class HeartbeatRejected(Exception):
    """A datagram that is not a valid heartbeat; ``reason`` is short, for counters and logs."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _mac(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, payload, hashlib.sha256).digest()


def encode(hb: Heartbeat, secret: bytes) -> bytes:
    """Serialize and authenticate ``hb``. Raises ValueError if the datagram would be oversize."""
    payload = hb.SerializeToString(deterministic=True)
    data = MAGIC + _mac(secret, payload) + payload
    if len(data) > MAX_DATAGRAM:
        raise ValueError(f"heartbeat datagram of {len(data)} bytes exceeds {MAX_DATAGRAM}")
    return data


def decode(data: bytes, secret: bytes) -> Heartbeat:
    """Check and parse one datagram. Raises HeartbeatRejected and nothing else."""
    if len(data) > MAX_DATAGRAM:
        raise HeartbeatRejected("oversize")
    if len(data) < HEADER_LEN:
        raise HeartbeatRejected("too short")
    if data[: len(MAGIC)] != MAGIC:
        raise HeartbeatRejected("bad magic")
    mac = data[len(MAGIC) : HEADER_LEN]
    payload = data[HEADER_LEN:]
    # Constant-time compare: no timing oracle for forging a MAC byte by byte.
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        raise HeartbeatRejected("bad hmac")
    hb = Heartbeat()
    try:
        hb.ParseFromString(payload)
    except (DecodeError, ValueError, UnicodeDecodeError) as exc:
        # Only a buggy or mismatched peer gets here: the MAC was right.
        raise HeartbeatRejected("undecodable payload") from exc
    return hb
