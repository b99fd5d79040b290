"""Event-stream tokens: what a browser's `EventSource` presents instead of an API key.

`EventSource` cannot send an `Authorization` header, and an API key in a URL ends up in logs,
proxies and browser history. So an authenticated `POST /api/event-tokens` mints a signed token
(`voice_server.security.signed_tokens`) that names the API key it was minted with. It opens the
key's user's event streams until it expires, a minute later by default: long enough to open a
stream, too short to be worth stealing, since the call-log page mints a new one for every
(re)connect.

A token is only as good as its key: `LiveKeys` says whether the key is still live, reading it at
most once per `recheck_seconds` per key, so a revoked key's tokens are refused at connect, and
open streams that re-check as often end, within seconds of the revocation.
"""

from __future__ import annotations

import time

from stores.api_keys import ApiKeyStore
from voice_server.security.signed_tokens import SignedTokens, TokenRefused


class EventTokens:
    def __init__(self, secret: str, ttl_seconds: float) -> None:
        self._signed = SignedTokens(secret, "call-log event streams", "event token", ttl_seconds)

    def mint(self, key_id: str, now: float | None = None) -> tuple[str, int]:
        """A token for the API key `key_id`, and its expiry (Unix seconds)."""
        return self._signed.mint(key_id, time.time() if now is None else now)

    def key_for(self, token: str, now: float | None = None) -> str | None:
        """The API key id of a genuine, unexpired token; None for anything else."""
        try:
            return self._signed.open(token, time.time() if now is None else now)
        except TokenRefused:
            return None


class LiveKeys:
    """Whose live API key an id is, as read at most once per `recheck_seconds` per key."""

    def __init__(self, keys: ApiKeyStore, recheck_seconds: float) -> None:
        self._keys = keys
        self.recheck_seconds = recheck_seconds
        self._read: dict[str, tuple[float, str | None]] = {}  # key id → (read at, user or None)

    async def user_of(self, key_id: str) -> str | None:
        """The `userId` of the key, None once it is revoked (or was never there)."""
        now = time.monotonic()
        known = self._read.get(key_id)
        if known is not None and now - known[0] < self.recheck_seconds:
            return known[1]
        user = await self._keys.live_user(key_id)
        fresh = {
            key: read for key, read in self._read.items() if now - read[0] < self.recheck_seconds
        }
        self._read = fresh | {key_id: (now, user)}
        return user
