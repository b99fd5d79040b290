"""A small application of the tests' own, standing where our server's outbound webhooks will:
it checks the signature of every request the Twilio stand-in makes, records it, answers TwiML,
and takes media streams, where a scripted agent speaks (μ-law tones) and hangs up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from twilio.request_validator import RequestValidator

from media import twilio as protocol
from media.codec import FRAME_BYTES, ulaw_to_pcm16
from voice_server.simulation.caller_script import tone
from voice_server.simulation.local_server import serve_app

WAIT_S = 10.0


@dataclass
class Received:
    path: str
    form: dict[str, str]
    signed: bool  # the signature was Twilio's, over the URL and form


@dataclass
class StreamSeen:
    """One media stream as the application saw it."""

    signed: bool
    start: protocol.Start | None = None
    inbound: bytearray = field(default_factory=bytearray)  # the callee's μ-law
    echoed: list[str] = field(default_factory=list)  # mark names echoed back
    stopped: bool = False  # a `stop` arrived
    closed: bool = False

    def _loud_frames(self, since: int) -> np.ndarray:
        pcm = np.abs(np.frombuffer(ulaw_to_pcm16(bytes(self.inbound[since:])), dtype=np.int16))
        frames = pcm[: len(pcm) // FRAME_BYTES * FRAME_BYTES].reshape(-1, FRAME_BYTES)
        return frames.max(axis=1) > 1000  # type: ignore[no-any-return]

    def loud_ms(self, since: int = 0) -> float:
        """How much of the callee's audio (from byte `since` on) was sound, not silence."""
        return float(self._loud_frames(since).sum() * 20)

    def quiet_ms(self) -> float:
        """How long the callee has been silent (its trailing silence)."""
        loud = np.flatnonzero(self._loud_frames(0))
        frames = len(self.inbound) // FRAME_BYTES
        return float((frames - (loud[-1] + 1 if loud.size else 0)) * 20)


Agent = Callable[["WebhookApp", WebSocket, StreamSeen], Awaitable[None]]


async def say(websocket: WebSocket, seen: StreamSeen, mark: str, ms: float = 200) -> None:
    """Send `ms` of a 440 Hz tone, then a mark."""
    assert seen.start is not None
    sid = seen.start.stream_sid
    await websocket.send_text(protocol.build_media(sid, tone(440, ms)))
    await websocket.send_text(protocol.build_mark(sid, mark))


@dataclass
class WebhookApp:
    token: str
    agent: Agent
    twiml: dict[str, str] = field(default_factory=dict)  # path → the TwiML it answers
    held: dict[str, asyncio.Event] = field(default_factory=dict)  # path → answer once set
    base_url: str = ""
    requests: list[Received] = field(default_factory=list)
    streams: list[StreamSeen] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/stream"

    def stream_twiml(self, **parameters: str) -> str:
        tags = "".join(f'<Parameter name="{k}" value="{v}"/>' for k, v in parameters.items())
        stream = f'<Stream url="{self.ws_url}">{tags}</Stream>'
        return f"<?xml version='1.0'?><Response><Connect>{stream}</Connect></Response>"

    def received(self, path: str) -> list[Received]:
        return [request for request in self.requests if request.path == path]

    async def wait_until(self, ready: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT_S), self.changed:
            await self.changed.wait_for(ready)

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def webhook(self, request: Request) -> Response:
        signature = request.headers.get("x-twilio-signature", "")
        validator = RequestValidator(self.token)
        if request.method == "GET":  # the parameters are in the URL, and the URL alone is signed
            form = {k: str(v) for k, v in request.query_params.items()}
            signed = validator.validate(str(request.url), {}, signature)
        else:
            posted = await request.form()
            form = {k: str(v) for k, v in posted.items()}
            signed = validator.validate(str(request.url), posted, signature)
        self.requests.append(Received(request.url.path, form, signed))
        await self._notify()
        if (held := self.held.get(request.url.path)) is not None:
            await held.wait()
        return Response(self.twiml.get(request.url.path, ""), media_type="application/xml")

    async def stream(self, websocket: WebSocket) -> None:
        signature = websocket.headers.get("x-twilio-signature", "")
        seen = StreamSeen(RequestValidator(self.token).validate(self.ws_url, {}, signature))
        self.streams.append(seen)
        await websocket.accept()
        agent = asyncio.create_task(self._run_agent(websocket, seen))
        try:
            while True:
                self._take(seen, protocol.parse_event(await websocket.receive_text()))
                await self._notify()
        except WebSocketDisconnect:
            pass
        finally:
            seen.closed = True
            agent.cancel()
            await self._notify()

    async def _run_agent(self, websocket: WebSocket, seen: StreamSeen) -> None:
        await self.wait_until(lambda: seen.start is not None)
        await self.agent(self, websocket, seen)

    @staticmethod
    def _take(seen: StreamSeen, event: protocol.Event) -> None:
        if isinstance(event, protocol.Start):
            seen.start = event
        elif isinstance(event, protocol.Media):
            seen.inbound += event.payload
        elif isinstance(event, protocol.Mark):
            seen.echoed.append(event.name)
        elif isinstance(event, protocol.Stop):
            seen.stopped = True


@asynccontextmanager
async def serve_webhook_app(app: WebhookApp) -> AsyncIterator[WebhookApp]:
    routes = [
        WebSocketRoute("/stream", app.stream),
        Route("/{path:path}", app.webhook, methods=["POST", "GET"]),
    ]
    async with serve_app(Starlette(routes=routes)) as base_url:
        app.base_url = base_url
        yield app
