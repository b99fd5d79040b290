"""Secrets at rest: `SecretBox` seals short strings (a number's Twilio auth token) for storage.

Sealed text is a Fernet token (AES-128-CBC with HMAC-SHA256, from `cryptography`): a value
written under one key cannot be read, or altered unnoticed, without that key. The key comes
from the deployment's settings; the stores never see where it was kept.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken


class SecretUnreadable(ValueError):
    """Sealed text was written under another key, was altered, or was never sealed."""


class SecretBox:
    """Seals and opens secrets with one Fernet key (32 url-safe base64-encoded bytes)."""

    def __init__(self, key: str | bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except ValueError as error:
            raise ValueError("a secrets key is 32 url-safe base64-encoded bytes") from error

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        """The secret in `sealed`. Raises SecretUnreadable if this key did not seal it."""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise SecretUnreadable("the sealed secret cannot be read with this key") from None

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"
