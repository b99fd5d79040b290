"""Who may open a media stream: the short-lived media-stream tokens, and the bounded room for
media streams that have not proved anything yet.

Stream tokens bind a media stream to the call our voice webhook accepted: the webhook (whose
Twilio signature was checked) mints `call_sid.expiry.mac`, hands it to Twilio as a TwiML
`<Parameter>`, and the stream must present it in its `start` message for that same CallSid,
before expiry, once. Beside it goes the call's signed `grant` (`StreamGrant`: what the stream
needs of the call record), so that the stream's start reads nothing before the greeting plays.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from voice_server.security.signed_tokens import SignedTokens, TokenRefused


class StreamTokenError(Exception):
    """The media stream's token is missing, forged, expired, reused or for another call."""


@dataclass(frozen=True)
class StreamGrant:
    """What a stream's parameters vouch for: the call, as our webhook recorded it.

    `agent_id` is empty for a stream whose TwiML a server of an earlier version made (it had no
    `grant`): the stream then reads the call record for it.
    """

    call_sid: str
    agent_id: str
    scheduled_call_id: str | None = None


_SEPARATOR = ":"  # between the grant's fields in its payload; none of them holds one


class StreamTokens:
    """Mints and checks a stream's `token` and `grant`; remembers used tokens until they would
    have expired."""

    def __init__(self, secret: str, ttl_seconds: float) -> None:
        self._signed = SignedTokens(secret, "media streams", "stream token", ttl_seconds)
        self._grants = SignedTokens(secret, "media stream grants", "stream grant", ttl_seconds)
        self._used: dict[str, float] = {}

    def mint(self, grant: StreamGrant, now: float | None = None) -> dict[str, str]:
        """The stream's `<Parameter>`s: `token`, whose payload is the CallSid alone as servers of
        an earlier version expect (during a rolling upgrade either may take the stream), and
        `grant`, which they ignore."""
        fields = [grant.call_sid, grant.agent_id, grant.scheduled_call_id or ""]
        if any(_SEPARATOR in field for field in fields):
            raise ValueError(f"a stream grant's fields may not hold {_SEPARATOR!r}")
        now = now if now is not None else time.time()
        return {
            "token": self._signed.mint(grant.call_sid, now)[0],
            "grant": self._grants.mint(_SEPARATOR.join(fields), now)[0],
        }

    def redeem(
        self, parameters: Mapping[str, str], call_sid: str, now: float | None = None
    ) -> StreamGrant:
        """Accept the stream's `token` for `call_sid` once, and return its grant; raise
        StreamTokenError saying why otherwise."""
        now = now if now is not None else time.time()
        token = parameters.get("token", "")
        try:
            token_call = self._signed.open(token, now)
            grant = self._grant(parameters.get("grant"), call_sid, now)
        except TokenRefused as refused:
            raise StreamTokenError(str(refused)) from None
        if token_call != call_sid or grant.call_sid != call_sid:
            raise StreamTokenError("stream token was issued for another call")
        # Each token once, not each call: a call we placed may move to a second stream (the
        # voicemail after the beep) with a token minted for it then.
        self._used = {used: exp for used, exp in self._used.items() if exp >= now}
        if token in self._used:
            raise StreamTokenError("stream token was already used")
        self._used[token] = now + self._signed.ttl_seconds
        return grant

    def _grant(self, grant: str | None, call_sid: str, now: float) -> StreamGrant:
        """The grant a genuine `grant` parameter holds; none for TwiML of an earlier version."""
        if grant is None:
            return StreamGrant(call_sid, "")
        granted_call, agent_id, scheduled_call_id = self._grants.open(grant, now).split(_SEPARATOR)
        return StreamGrant(granted_call, agent_id, scheduled_call_id or None)


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
