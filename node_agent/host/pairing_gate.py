"""The one-time pairing code and its guard (pure: time is passed in).

The code is 12 characters from an alphabet without look-alikes, shown as three groups
of four (``7KQ2-M9XD-4HTA``): about 59 bits, typed once from the server's screen. A
wrong code costs an attempt; after ``max_attempts`` wrong ones the gate refuses every
code, the right one too, for ``cooldown_s``, so guessing over the network is hopeless.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from protos.security.pairing_proof import normalize_code

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: read off a screen
GROUPS, GROUP_LEN = 3, 4
MAX_ATTEMPTS = 5
COOLDOWN_S = 60.0


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(GROUPS * GROUP_LEN))
    return format_code(raw)


def format_code(text: str) -> str:
    raw = normalize_code(text)
    return "-".join(raw[i : i + GROUP_LEN] for i in range(0, len(raw), GROUP_LEN))


class CodeRefused(Exception):
    """A pairing call's code was not accepted; the message says why and what next."""

    def __init__(self, message: str, attempts_left: int = 0, cooldown_s: float = 0.0) -> None:
        super().__init__(message)
        self.attempts_left = attempts_left
        self.cooldown_s = cooldown_s


@dataclass
class PairingGate:
    """Checks codes against the current one, counting wrong attempts."""

    max_attempts: int = MAX_ATTEMPTS
    cooldown_s: float = COOLDOWN_S
    _wrong: int = 0
    _blocked_until: float = 0.0

    def check(self, given: str, expected: str, now: float) -> None:
        """Return if ``given`` is the code; raise CodeRefused otherwise."""
        if now < self._blocked_until:
            wait = self._blocked_until - now
            raise CodeRefused(
                f"too many wrong pairing codes: wait {wait:.0f} s before trying again",
                cooldown_s=wait,
            )
        if hmac.compare_digest(normalize_code(given), normalize_code(expected)):
            self._wrong = 0
            return
        self._wrong += 1
        if self._wrong >= self.max_attempts:
            self._wrong = 0
            self._blocked_until = now + self.cooldown_s
            raise CodeRefused(
                f"wrong pairing code; {self.max_attempts} wrong codes in a row: pairing is "
                f"refused for {self.cooldown_s:.0f} s",
                cooldown_s=self.cooldown_s,
            )
        left = self.max_attempts - self._wrong
        raise CodeRefused(
            f"wrong pairing code ({left} attempt{'s' * (left != 1)} left before a "
            f"{self.cooldown_s:.0f} s wait): read it again on the server's screen or log",
            attempts_left=left,
        )
