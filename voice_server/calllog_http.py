"""The call log over HTTP: Server-Sent Events for one call's transcript and for the list of
active calls, and the call-log page (static files, no build step).

Streams (`text/event-stream`, authenticated by `?token=` from `POST /api/event-tokens`):

- `GET /api/events/calls/{id}`: an `entry` event per transcript entry, `id:` its index, from
  `Last-Event-ID` + 1 on a reconnect (else `?since=N`, else 0); then `end` with the call.
- `GET /api/events/calls`: a `calls` event with the user's active calls, at once and on change.

A stream closes after `STREAM_MAX_S`; `EventSource` reconnects by itself and resumes, which
also lets a load balancer move clients between servers. Idle streams carry a comment line every
`HEARTBEAT_S` so proxies keep them open.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from voice_server.api.envelope import ApiError, failure, invalid, not_found
from voice_server.calllog import CallLog
from voice_server.services import Services

STATIC = Path(__file__).parent / "static"
HEARTBEAT_S = 15.0
STREAM_MAX_S = 300.0
RETRY_MS = 2000
_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def calllog_routes() -> list[BaseRoute]:
    """Mount these before `/api`, whose mount would take the event paths."""
    return [
        Route("/api/events/calls", active_calls_events, methods=["GET"]),
        Route("/api/events/calls/{id}", call_events, methods=["GET"]),
        Route("/calllog", calllog_page, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]


async def calllog_page(request: Request) -> Response:
    return FileResponse(STATIC / "calllog.html", headers={"Cache-Control": "no-cache"})


async def call_events(request: Request) -> Response:
    services: Services = request.state.services
    call_id = request.path_params["id"]
    try:
        user_id = _token_user(services, request)
        since = _resume_point(request)
        await _check_owner(services, user_id, call_id, since)
    except ApiError as error:
        return failure(error)
    stream = _call_stream(services.call_log, call_id, since)
    return StreamingResponse(stream, media_type="text/event-stream", headers=_HEADERS)


async def active_calls_events(request: Request) -> Response:
    services: Services = request.state.services
    try:
        user_id = _token_user(services, request)
    except ApiError as error:
        return failure(error)
    stream = _active_stream(services.call_log, user_id)
    return StreamingResponse(stream, media_type="text/event-stream", headers=_HEADERS)


def _token_user(services: Services, request: Request) -> str:
    user_id = services.event_tokens.user_for(request.query_params.get("token", ""))
    if user_id is None:
        raise ApiError(401, "invalid_event_token", "send `?token=` from POST /api/event-tokens")
    return user_id


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


async def _call_stream(call_log: CallLog, call_id: str, since: int) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    deadline = asyncio.get_running_loop().time() + STREAM_MAX_S
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
            beat = await _next_change(feed.wait_past(sent), deadline)
            if beat is None:
                return
            if beat:
                yield beat


async def _active_stream(call_log: CallLog, user_id: str) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    deadline = asyncio.get_running_loop().time() + STREAM_MAX_S
    async with call_log.follow_active(user_id) as feed:
        version = 0
        while True:
            if feed.version > version:
                version = feed.version
                yield _event("calls", [call.model_dump(mode="json") for call in feed.calls])
            beat = await _next_change(feed.wait_past(version), deadline)
            if beat is None:
                return
            if beat:
                yield beat


async def _next_change(change: Coroutine[Any, Any, None], deadline: float) -> str | None:
    """Await `change` for at most a heartbeat: "" once it came, a comment line to send if it
    did not, None once the stream's time is up."""
    left = deadline - asyncio.get_running_loop().time()
    if left <= 0:
        change.close()
        return None
    try:
        async with asyncio.timeout(min(HEARTBEAT_S, left)):
            await change
    except TimeoutError:
        return ": keep-alive\n\n"
    return ""


def _event(name: str, data: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
