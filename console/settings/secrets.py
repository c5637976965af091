"""Secrets (a client key's passphrase) in the OS keyring through ``keyring``.

With no usable keyring backend the console says so and keeps a secret only in memory for
the session: it is never written to a file in plain text (DESIGN §7).
"""

from __future__ import annotations

import contextlib

import keyring
import keyring.errors
from keyring.backend import KeyringBackend

SERVICE = "mirrorpair-console"
PASSPHRASE = "key-passphrase"


class SecretStoreError(RuntimeError):
    pass


class SecretStore:
    def __init__(self, backend: KeyringBackend | None = None) -> None:
        self._backend = backend
        self._session: dict[tuple[str, str], str] = {}
        self._available: bool | None = None

    def _keyring(self) -> KeyringBackend:
        return self._backend or keyring.get_keyring()

    def available(self) -> bool:
        """Whether a real keyring backend exists (probed once: probing may be slow)."""
        if self._available is None:
            self._available = self._probe()
        return self._available

    def _probe(self) -> bool:
        kr = self._keyring()
        if type(kr).__module__.startswith("keyring.backends.fail"):
            return False
        try:
            return float(kr.priority) > 0  # type: ignore[attr-defined]
        except Exception:  # some backends compute priority by probing and may raise
            return False

    def unavailable_message(self) -> str:
        return (
            "No OS keyring is available (no Secret Service / KWallet). Key passphrases "
            "cannot be saved: the console asks for them each session and never writes "
            "them to disk."
        )

    def get(self, cluster: str, what: str = PASSPHRASE) -> str | None:
        if (cluster, what) in self._session:
            return self._session[(cluster, what)]
        if not self.available():
            return None
        try:
            value = self._keyring().get_password(SERVICE, f"{cluster}:{what}")
        except keyring.errors.KeyringError:
            return None
        if value is not None:  # read the keyring once per session (it may prompt)
            self._session[(cluster, what)] = value
        return value

    def set(
        self, cluster: str, value: str, what: str = PASSPHRASE, *, persist: bool = True
    ) -> bool:
        """Remember ``value`` for this session and, when possible and wanted, in the
        keyring. True if it was stored in the keyring."""
        self._session[(cluster, what)] = value
        if not persist or not self.available():
            return False
        try:
            self._keyring().set_password(SERVICE, f"{cluster}:{what}", value)
        except keyring.errors.KeyringError as e:
            raise SecretStoreError(f"the keyring refused to store the secret: {e}") from None
        return True

    def delete(self, cluster: str, what: str = PASSPHRASE) -> None:
        self._session.pop((cluster, what), None)
        if self.available():
            with contextlib.suppress(keyring.errors.KeyringError):  # nothing stored
                self._keyring().delete_password(SERVICE, f"{cluster}:{what}")
