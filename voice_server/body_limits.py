"""How large a request body may be, enforced before any route reads a byte of it.

Twilio's webhook bodies are a few kilobytes, so `/twilio/` paths take `webhook_body_max_bytes`
(64 KB by default) and every other path `api_body_max_bytes` (1 MB). A body declared larger by
its `Content-Length` is refused (413) at once, unread; one sent without a length (chunked) is
counted as it arrives and refused as soon as it passes the limit, so no route ever holds more
than the limit plus one network read. The webhook's signature can only be checked once its form
is read: this cap is what keeps an unsigned flood from costing memory. The refusal is sent at
once; uvicorn then drops whatever the client still sends of that body, unbuffered. (Closing the
connection instead would reset it, and a client still sending would lose the refusal.)
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voice_server.api.envelope import ApiError, failure
from voice_server.log import get_logger

log = get_logger(__name__)


class _TooLarge(Exception):
    """Raised into the route by `receive` once the body passes the limit."""


class BodyLimits:
    """Pure ASGI middleware; it must sit inside anything that turns exceptions into 500s."""

    def __init__(self, app: ASGIApp, webhook_max: int, other_max: int) -> None:
        self.app = app
        self.webhook_max = webhook_max
        self.other_max = other_max

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.webhook_max if scope["path"].startswith("/twilio/") else self.other_max
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdecimal() and int(declared) > limit:
            await _refuse(scope, send, limit, f"Content-Length {declared}")
            return
        received = 0
        answering = False

        async def counting() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def noting_start(message: Message) -> None:
            nonlocal answering
            answering = answering or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting, noting_start)
        except _TooLarge:
            if answering:  # a route that answers before reading its body; nothing else to say
                raise
            await _refuse(scope, send, limit, f"more than {limit} bytes sent")


async def _refuse(scope: Scope, send: Send, limit: int, seen: str) -> None:
    path = scope["path"]
    log.warning("request body too large", path=path, limit=limit, seen=seen)
    message = f"the request body is larger than {limit} bytes"
    response: Response = (
        failure(ApiError(413, "body_too_large", message))
        if path.startswith("/api/")
        else PlainTextResponse(message, 413)
    )
    await response(scope, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}
