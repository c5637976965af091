"""What a pairing call carries instead of the pairing code (DESIGN §7).

The console sends HMAC-SHA256 of the fingerprint of the certificate the server presented
to it, keyed with the code the operator typed; the agent computes the same over the
certificate it serves. A machine that poses as the server on the LAN (mDNS proves
nothing) serves another certificate: what it receives is worthless for the real server,
and the code itself never crosses the network.
"""

from __future__ import annotations

import hashlib
import hmac


def normalize_code(text: str) -> str:
    """Upper case, dashes and spaces dropped: how a person may type it."""
    return "".join(c for c in text.upper() if c not in "- \t")


def pairing_proof(code: str, fingerprint: str) -> str:
    """hex HMAC-SHA256(key = the normalized code, message = the certificate's SHA-256)."""
    key = normalize_code(code).encode()
    return hmac.new(key, fingerprint.lower().encode(), hashlib.sha256).hexdigest()
