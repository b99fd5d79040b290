"""The management REST API under `/api`, for the web UI and scripts.

Every operation needs an API key (`Authorization: Bearer …`, see `voice-server api-key`) and
sees only the documents of the key's user. `/api/openapi.json` describes it all.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from voice_server.api import (
    agents,
    calls,
    conversations,
    messages_send,
    phone_numbers,
    prompts,
    scheduled_calls,
)
from voice_server.api.envelope import ApiError, failure
from voice_server.api.openapi import openapi_document
from voice_server.api.operations import Operation

OPERATIONS: list[Operation] = [
    *phone_numbers.RESOURCE.operations(),
    *prompts.RESOURCE.operations(),
    *agents.RESOURCE.operations(),
    *scheduled_calls.RESOURCE.operations(),
    *calls.OPERATIONS,
    *conversations.OPERATIONS,
    *messages_send.OPERATIONS,
]
DOCUMENT = openapi_document(OPERATIONS)


async def openapi(request: Request) -> Response:
    return JSONResponse(DOCUMENT)


async def no_route(request: Request, exc: Exception) -> Response:
    """Starlette's 404 / 405 for a path no route takes: in the envelope under `/api`, as
    Starlette answers elsewhere. (A path the mount's pattern cannot take, such as one with a
    newline in it, never reaches the mount, so this is an app-wide handler.)"""
    assert isinstance(exc, HTTPException)
    if not request.url.path.startswith("/api/"):
        return PlainTextResponse(exc.detail, exc.status_code, headers=exc.headers)
    code = "not_found" if exc.status_code == 404 else "method_not_allowed"
    error = failure(
        ApiError(exc.status_code, code, f"{request.method} {request.url.path}: {exc.detail}")
    )
    error.headers.update(exc.headers or {})
    return error


NO_ROUTE_HANDLERS = {404: no_route, 405: no_route}


def api_mount() -> Mount:
    routes = [op.route() for op in OPERATIONS]
    return Mount("/api", routes=[Route("/openapi.json", openapi, methods=["GET"]), *routes])
