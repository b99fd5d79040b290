"""A local server standing in for Twilio's REST API (`Messages.json`), for the real `twilio`
client to talk to: it records each message request (form fields and Basic auth) and answers as
Twilio does, or with a scripted refusal (docs/twilio.md §8)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

WAIT_S = 10.0


@dataclass(frozen=True)
class SentMessage:
    """One `POST /2010-04-01/Accounts/{account}/Messages.json` as Twilio would have seen it."""

    account_sid: str
    auth: tuple[str, str]
    form: dict[str, str]


@dataclass
class FakeTwilio:
    base_url: str = ""
    sent: list[SentMessage] = field(default_factory=list)
    refusal: tuple[int, str] | None = None  # (Twilio error code, message) to answer with
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _sids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def wait_for(self, count: int) -> list[SentMessage]:
        """The first `count` messages, once they have arrived."""
        async with asyncio.timeout(WAIT_S), self._arrived:
            await self._arrived.wait_for(lambda: len(self.sent) >= count)
        return self.sent[:count]

    async def messages(self, request: Request) -> Response:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        user, _, password = base64.b64decode(encoded).decode().partition(":")
        if scheme != "Basic" or user != request.path_params["account"]:
            return JSONResponse({"code": 20003, "message": "Authenticate", "status": 401}, 401)
        form = {key: str(value) for key, value in (await request.form()).multi_items()}
        async with self._arrived:
            self.sent.append(SentMessage(user, (user, password), form))
            self._arrived.notify_all()
        if self.refusal is not None:
            code, message = self.refusal
            return JSONResponse({"code": code, "message": message, "status": 400}, 400)
        sid = f"SM{next(self._sids):032x}"
        body = {"sid": sid, "status": "queued", "from": form["From"], "to": form["To"]}
        return JSONResponse({**body, "body": form["Body"], "account_sid": user}, 201)


@asynccontextmanager
async def serve_fake_twilio() -> AsyncIterator[FakeTwilio]:
    """The stand-in under uvicorn on a free loopback port; `base_url` replaces api.twilio.com."""
    fake = FakeTwilio()
    path = "/2010-04-01/Accounts/{account}/Messages.json"
    app = Starlette(routes=[Route(path, fake.messages, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    fake.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if serving.done():
                await serving
                raise RuntimeError("the fake Twilio stopped during start-up")
            await asyncio.sleep(0.01)
        yield fake
    finally:
        server.should_exit = True
        await serving
        sock.close()
