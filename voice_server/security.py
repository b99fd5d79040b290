"""Who may talk to us: Twilio webhook signatures, the short-lived media-stream tokens, and the
bounded room for media streams that have not proved anything yet.

Stream tokens bind a media stream to the call our voice webhook accepted: the webhook (whose
Twilio signature was checked) mints `call_sid.expiry.mac`, hands it to Twilio as a TwiML
`<Parameter>`, and the stream must present it in its `start` message for that same CallSid,
before expiry, once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from twilio.request_validator import RequestValidator


class StreamTokenError(Exception):
    """The media stream's token is missing, forged, expired, reused or for another call."""


def twilio_signature_valid(
    url: str, params: Mapping[str, str], signature: str, auth_tokens: Iterable[str]
) -> bool:
    """Whether `signature` is Twilio's signature of `url` + `params` under any of the tokens
    (several during an auth-token rotation, or a number's own token and the deployment's)."""
    return any(RequestValidator(token).validate(url, params, signature) for token in auth_tokens)


def public_url(base_url: str, path: str, query: str) -> str:
    """The URL exactly as Twilio requested it: our public base plus the raw path and query."""
    return f"{base_url}{path}" + (f"?{query}" if query else "")


class StreamTokens:
    """Mints and checks stream tokens; remembers used ones until they would have expired."""

    def __init__(self, secret: str, ttl_seconds: float) -> None:
        self._key = secret.encode()
        self._ttl = ttl_seconds
        self._used: dict[str, float] = {}

    def mint(self, call_sid: str, now: float | None = None) -> str:
        expiry = int((now if now is not None else time.time()) + self._ttl)
        return f"{call_sid}.{expiry}.{self._mac(call_sid, expiry)}"

    def redeem(self, token: str, call_sid: str, now: float | None = None) -> None:
        """Accept `token` for `call_sid` once; raise StreamTokenError saying why otherwise."""
        now = now if now is not None else time.time()
        parts = token.split(".")
        if not token.isascii() or len(parts) != 3 or not parts[1].isdecimal():
            raise StreamTokenError("malformed stream token")
        token_call, expiry, mac = parts[0], int(parts[1]), parts[2]
        if not hmac.compare_digest(mac, self._mac(token_call, expiry)):
            raise StreamTokenError("stream token signature is wrong")
        if token_call != call_sid:
            raise StreamTokenError("stream token was issued for another call")
        if now > expiry:
            raise StreamTokenError("stream token has expired")
        self._used = {sid: exp for sid, exp in self._used.items() if exp >= now}
        if call_sid in self._used:
            raise StreamTokenError("stream token was already used")
        self._used[call_sid] = expiry

    def _mac(self, call_sid: str, expiry: int) -> str:
        digest = hmac.new(self._key, f"{call_sid}.{expiry}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class PendingStreamsFull(Exception):
    """Every place for a media stream waiting for its `start` is taken."""


class PendingStreams:
    """The media streams of this process that are open but have not presented a valid `start`.

    Anyone can open a WebSocket, and until its `start` carries a valid token a stream is
    anonymous; bounding how many may wait keeps idle or hostile sockets from crowding out calls.
    Twilio sends `start` right after the socket opens, so a real call holds a place for
    milliseconds.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.limit = limit
        self._waiting = 0

    @contextmanager
    def place(self) -> Iterator[None]:
        """Hold one place while the block runs; raise `PendingStreamsFull` if none is free."""
        if self._waiting >= self.limit:
            raise PendingStreamsFull(f"too many streams waiting for start (limit {self.limit})")
        self._waiting += 1
        try:
            yield
        finally:
            self._waiting -= 1
