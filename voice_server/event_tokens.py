"""Event-stream tokens: what a browser's `EventSource` presents instead of an API key.

`EventSource` cannot send an `Authorization` header, and an API key in a URL ends up in access
logs, proxies and browser history. So an authenticated `POST /api/event-tokens` mints a token
`base64(userId).expiry.mac` (HMAC-SHA256 under a key derived from the server's stream-token
secret), good only for reading that user's event streams, and only until it expires.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time

_PURPOSE = b"call-log event streams"


class EventTokens:
    def __init__(self, secret: str, ttl_seconds: float = 600.0) -> None:
        self._key = hmac.new(secret.encode(), _PURPOSE, hashlib.sha256).digest()
        self.ttl_seconds = ttl_seconds

    def mint(self, user_id: str, now: float | None = None) -> tuple[str, int]:
        """The token and its expiry (Unix seconds)."""
        expiry = int((time.time() if now is None else now) + self.ttl_seconds)
        user = base64.urlsafe_b64encode(user_id.encode()).rstrip(b"=").decode()
        return f"{user}.{expiry}.{self._mac(user, expiry)}", expiry

    def user_for(self, token: str, now: float | None = None) -> str | None:
        """The `userId` of a valid, unexpired token; None for anything else."""
        parts = token.split(".")
        if not token.isascii() or len(parts) != 3 or not parts[1].isdecimal():
            return None
        user, expiry, mac = parts[0], int(parts[1]), parts[2]
        if not hmac.compare_digest(mac, self._mac(user, expiry)):
            return None
        if (time.time() if now is None else now) > expiry:
            return None
        try:
            return base64.urlsafe_b64decode(user + "=" * (-len(user) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None

    def _mac(self, user: str, expiry: int) -> str:
        digest = hmac.new(self._key, f"{user}.{expiry}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
