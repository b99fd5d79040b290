"""The call log's live side of the API: Server-Sent Events for one call's transcript and for the
list of active calls, fed by the shared watchers of `voice_server.calllog`.

Streams (`text/event-stream`, authenticated by `?token=` from `POST /api/event-tokens`):

- `GET /api/events/calls/{id}`: an `entry` event per transcript entry, `id:` its index, from
  `Last-Event-ID` + 1 on a reconnect (else `?since=N`, else 0); then `end` with the call.
- `GET /api/events/calls`: a `calls` event with the user's active calls, at once and on change.

A token opens streams only while the API key that minted it is live; an open stream re-checks
its key every `api_key_recheck_seconds` and ends once the key is revoked. A stream closes after
`event_stream_max_seconds`; the client reconnects (with a new token) and resumes, which also
lets a load balancer move clients between servers. Idle streams carry a comment line every
`HEARTBEAT_S` so proxies keep them open.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from voice_server.api.envelope import ApiError, failure, invalid, not_found
from voice_server.calllog.watchers import CallLog
from voice_server.log import get_logger
from voice_server.services import Services

log = get_logger(__name__)
HEARTBEAT_S = 15.0
RETRY_MS = 2000
_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def event_routes() -> list[BaseRoute]:
    """Mount these before `/api`, whose mount would take the event paths."""
    return [
        Route("/api/events/calls", active_calls_events, methods=["GET"]),
        Route("/api/events/calls/{id}", call_events, methods=["GET"]),
    ]


async def call_events(request: Request) -> Response:
    services: Services = request.state.services
    call_id = request.path_params["id"]
    try:
        key_id, user_id = await _token_key(services, request)
        since = _resume_point(request)
        await _check_owner(services, user_id, call_id, since)
    except ApiError as error:
        return failure(error)
    stream = _call_stream(services.call_log, call_id, since, _Pace(services, key_id))
    return StreamingResponse(stream, media_type="text/event-stream", headers=_HEADERS)


async def active_calls_events(request: Request) -> Response:
    services: Services = request.state.services
    try:
        key_id, user_id = await _token_key(services, request)
    except ApiError as error:
        return failure(error)
    stream = _active_stream(services.call_log, user_id, _Pace(services, key_id))
    return StreamingResponse(stream, media_type="text/event-stream", headers=_HEADERS)


async def _token_key(services: Services, request: Request) -> tuple[str, str]:
    """The API key id and user of the request's `?token=`; ApiError 401 unless the token is
    genuine, unexpired, and its key still live."""
    key_id = services.event_tokens.key_for(request.query_params.get("token", ""))
    user_id = None if key_id is None else await services.live_keys.user_of(key_id)
    if key_id is None or user_id is None:
        log.warning("event token refused", path=request.url.path, key_live=key_id is not None)
        raise ApiError(
            401,
            "invalid_event_token",
            "the token is expired, forged or its API key revoked: send `?token=` from a new "
            "POST /api/event-tokens",
        )
    return key_id, user_id


def _resume_point(request: Request) -> int:
    """The index of the first entry to send: after `Last-Event-ID`, else `since`, else 0."""
    last = request.headers.get("last-event-id")
    field, text = (
        ("Last-Event-ID", last) if last else ("query.since", request.query_params.get("since", "0"))
    )
    if not text.isdecimal() or len(text) > 9:
        raise invalid(field, "must be a transcript index")
    return int(text) + 1 if last else int(text)


async def _check_owner(services: Services, user_id: str, call_id: str, since: int) -> None:
    """404 unless the call is the user's: from a watcher's memory if one is loaded, else one
    read (of the entries after `since` only)."""
    feed = services.call_log.loaded_feed(call_id)
    if feed is not None:
        owned = feed.summary is not None and feed.summary.userId == user_id
    else:
        owned = await services.calls.get_since(call_id, since, user_id) is not None
    if not owned:
        raise not_found("call")


async def _call_stream(
    call_log: CallLog, call_id: str, since: int, pace: _Pace
) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    async with call_log.follow_call(call_id) as feed:
        sent = since
        while True:
            for index, entry in enumerate(feed.entries[sent:], sent):
                yield _event("entry", {"index": index, **entry.model_dump(mode="json")}, index)
            sent = max(sent, len(feed.entries))
            if feed.summary is None:
                return
            if feed.ended:
                yield _event("end", feed.summary.model_dump(mode="json"))
                return
            beat = await pace.next_change(feed.wait_past(sent))
            if beat is None:
                return
            if beat:
                yield beat


async def _active_stream(call_log: CallLog, user_id: str, pace: _Pace) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    async with call_log.follow_active(user_id) as feed:
        version = 0
        while True:
            if feed.version > version:
                version = feed.version
                yield _event("calls", [call.model_dump(mode="json") for call in feed.calls])
            beat = await pace.next_change(feed.wait_past(version))
            if beat is None:
                return
            if beat:
                yield beat


class _Pace:
    """One stream's deadlines: its next heartbeat, its next check of its API key, its end."""

    def __init__(self, services: Services, key_id: str) -> None:
        self._live_keys = services.live_keys
        self._key_id = key_id
        now = asyncio.get_running_loop().time()
        self._end = now + services.settings.event_stream_max_seconds
        self._beat = now + HEARTBEAT_S
        self._check = now + self._live_keys.recheck_seconds

    async def next_change(self, change: Coroutine[Any, Any, None]) -> str | None:
        """Await `change` until the next deadline: "" once it came (or the key checked out), a
        comment line to send at a heartbeat, None once the stream must end (its time is up,
        or its key was revoked)."""
        try:
            return await self._wait(change)
        finally:
            change.close()  # not awaited if the stream ends first; a no-op once it ran

    async def _wait(self, change: Coroutine[Any, Any, None]) -> str | None:
        loop = asyncio.get_running_loop()
        if loop.time() >= self._check:
            self._check = loop.time() + self._live_keys.recheck_seconds
            if await self._live_keys.user_of(self._key_id) is None:
                log.info("event stream ended: its API key was revoked", key_id=self._key_id)
                return None
        if loop.time() >= self._end:
            return None
        try:
            async with asyncio.timeout_at(min(self._end, self._beat, self._check)):
                await change
        except TimeoutError:
            if loop.time() < self._beat:
                return ""
            self._beat = loop.time() + HEARTBEAT_S
            return ": keep-alive\n\n"
        return ""


def _event(name: str, data: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
