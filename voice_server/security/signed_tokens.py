"""The one signed-token format for the short-lived tokens the server hands out (media-stream
tokens, event-stream tokens): `payload.expiry.mac`, where `mac` is HMAC-SHA256 over
`payload.expiry` under a key derived from the server's secret *for one purpose*, so that a token
minted for one use never verifies for another. What the payload means, and whether a token may
be used once or many times, is its user's business.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math


class TokenRefused(Exception):
    """The token is malformed, its signature is wrong, or it has expired; the message says
    which."""


class SignedTokens:
    def __init__(self, secret: str, purpose: str, name: str, ttl_seconds: float) -> None:
        self._key = hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()
        self._name = name  # how refusals name the token: "stream token", "event token"
        self.ttl_seconds = ttl_seconds

    def mint(self, payload: str, now: float) -> tuple[str, int]:
        """The token for `payload` (ASCII, no "."), and its expiry in Unix seconds."""
        if not payload.isascii() or "." in payload:
            raise ValueError(f"a {self._name} payload must be ASCII without '.'")
        expiry = math.ceil(now + self.ttl_seconds)  # rounded up: a token lives the full TTL
        return f"{payload}.{expiry}.{self._mac(payload, expiry)}", expiry

    def open(self, token: str, now: float) -> str:
        """The payload of a genuine token that has not expired; TokenRefused otherwise."""
        parts = token.split(".")
        if not token.isascii() or len(parts) != 3 or not parts[1].isdecimal():
            raise TokenRefused(f"malformed {self._name}")
        payload, expiry, mac = parts[0], int(parts[1]), parts[2]
        if not hmac.compare_digest(mac, self._mac(payload, expiry)):
            raise TokenRefused(f"{self._name} signature is wrong")
        if now > expiry:
            raise TokenRefused(f"{self._name} has expired")
        return payload

    def _mac(self, payload: str, expiry: int) -> str:
        digest = hmac.new(self._key, f"{payload}.{expiry}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
