"""A stand-in for Twilio's Voice REST API and the phone network behind it, for outbound calls:
the real `twilio` client places calls on it (`client.api.base_url = standin.base_url`), and the
application cannot tell it from Twilio.

    POST /2010-04-01/Accounts/{AccountSid}/Calls.json           create a call (201, `queued`)
    GET  /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json  fetch it
    POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json  update it: Status, Url, Twiml

Requests authenticate with Basic auth, the account SID and its auth token; the token is what
every webhook of the call is then signed with. Errors are Twilio's JSON (`code`, `message`,
`more_info`, `status`). Each create is recorded (`creates`); scripted faults (`fail_next`,
`fail_number`) answer 429/500/503 or answer late. A created call is dialled on the stand-in's
phone network (`phone_network.PhoneCall`) to the destination's `Callee`, and what happened is
read with `await standin.finished(call_sid)`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import secrets
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voice_server.log import get_logger
from voice_server.simulation.call_record import CallRecord, CallRequest, call_json
from voice_server.simulation.callees import Callee
from voice_server.simulation.local_server import serve_app
from voice_server.simulation.phone_network import Document, Fetch, PhoneCall

log = get_logger(__name__)

E164 = re.compile(r"^\+[1-9]\d{1,14}$")
WEBHOOK_TIMEOUT_S = 15.0  # Twilio gives a webhook 15 s to answer (error 11205)
TWIML_MAX_CHARS = 4000
_FAULTS = {429: (20429, "Too Many Requests"), 500: (20500, "Internal Server Error")}
_FAULTS[503] = (20503, "Service Unavailable")


class TwilioError(Exception):
    """A request Twilio refuses: its HTTP status, error code and message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> JSONResponse:
        more_info = f"https://www.twilio.com/docs/errors/{self.code}"
        body = {"code": self.code, "message": self.message, "more_info": more_info}
        return JSONResponse({**body, "status": self.status}, self.status)


@dataclass(frozen=True)
class ApiFault:
    """How the stand-in answers one create request instead of the usual way: an HTTP error
    (`status` 429, 500 or 503, with Twilio's code), after `delay_s`; with `status` None, the call
    is created as usual but the answer comes `delay_s` late (a client that gave up earlier
    never learns that the call was placed)."""

    status: int | None = 500
    delay_s: float = 0.0


@dataclass
class CreateRequest:
    """One `POST …/Calls.json` as received, and how it was answered."""

    account_sid: str
    fields: list[tuple[str, str]]  # the form, in order, repeated names kept
    received: float  # time.time()
    answer: int = 0  # the HTTP status answered (0 while it has not been)
    call_sid: str | None = None  # the call it created

    def get(self, name: str) -> str | None:
        return next((value for key, value in self.fields if key == name), None)

    def getall(self, name: str) -> list[str]:
        return [value for key, value in self.fields if key == name]


@dataclass
class TwilioStandin:
    """The stand-in's state. `callees` maps a destination number to who answers there (the
    others get `default_callee`); `auth_tokens`, when given, is each account's only token."""

    callees: dict[str, Callee] = field(default_factory=dict)
    default_callee: Callee = field(default_factory=Callee)
    auth_tokens: Mapping[str, str] | None = field(default=None, repr=False)
    webhook_timeout_s: float = WEBHOOK_TIMEOUT_S
    base_url: str = ""
    creates: list[CreateRequest] = field(default_factory=list)
    _calls: dict[str, PhoneCall] = field(default_factory=dict)
    _next_faults: deque[ApiFault] = field(default_factory=deque)
    _number_faults: dict[str, deque[ApiFault]] = field(default_factory=dict)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _http: aiohttp.ClientSession | None = None
    _group: asyncio.TaskGroup | None = None

    # --- for tests and benchmarks ----------------------------------------------------------------

    def fail_next(self, *faults: ApiFault) -> None:
        """Answer the next create requests (one fault each, in order) with `faults`."""
        self._next_faults.extend(faults)

    def fail_number(self, to: str, *faults: ApiFault) -> None:
        """Answer the next create requests that dial `to` with `faults` (before `fail_next`'s)."""
        self._number_faults.setdefault(to, deque()).extend(faults)

    def calls(self) -> list[CallRecord]:
        """Every call's record as it stands, in the order the calls were created."""
        return [call.record for call in self._calls.values()]

    def call(self, call_sid: str) -> CallRecord:
        """The call's record as it stands. Raises KeyError for a SID the stand-in never made."""
        return self._calls[call_sid].record

    async def finished(self, call_sid: str, timeout_s: float = 60.0) -> CallRecord:
        """The call's record once it has ended and every callback about it has been made."""
        call = self._calls[call_sid]
        async with asyncio.timeout(timeout_s):
            await call.done.wait()
        return call.record

    async def wait_for_creates(
        self, count: int, *, answered: bool = False, timeout_s: float = 10.0
    ) -> list[CreateRequest]:
        """The first `count` create requests, once they have arrived (and been answered)."""

        def arrived() -> bool:
            first = self.creates[:count]
            return len(first) == count and not (answered and any(c.answer == 0 for c in first))

        async with asyncio.timeout(timeout_s), self._arrived:
            await self._arrived.wait_for(arrived)
        return self.creates[:count]

    # --- the HTTP app ----------------------------------------------------------------------------

    def app(self) -> Starlette:
        calls = "/2010-04-01/Accounts/{account}/Calls"
        return Starlette(
            routes=[
                Route(f"{calls}.json", self._create, methods=["POST"]),
                Route(f"{calls}.json", self._list, methods=["GET"]),
                Route(calls + "/{sid}.json", self._fetch, methods=["GET"]),
                Route(calls + "/{sid}.json", self._update, methods=["POST"]),
            ],
            exception_handlers={TwilioError: _error_response, 404: _not_found},
            lifespan=lambda _: self.running(),
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Own the calls and the HTTP session their webhooks use; leaving ends every call."""
        async with aiohttp.ClientSession() as http, asyncio.TaskGroup() as group:
            self._http, self._group = http, group
            try:
                yield
            finally:
                self._group = None
                for call in self._calls.values():
                    call.hang_up("network")

    async def _create(self, request: Request) -> Response:
        account_sid, token = self._authenticate(request)
        form = [(key, str(value)) for key, value in (await request.form()).multi_items()]
        create = CreateRequest(account_sid, form, time.time())
        async with self._arrived:
            self.creates.append(create)
            self._arrived.notify_all()
        try:
            call = await self._place(create, token)
        except TwilioError as error:
            async with self._arrived:
                create.answer = error.status
                self._arrived.notify_all()
            log.warning("call refused", code=error.code, reason=error.message)
            raise
        async with self._arrived:
            create.answer, create.call_sid = 201, call.record.sid
            self._arrived.notify_all()
        return JSONResponse(call_json(call.record), 201)

    async def _place(self, create: CreateRequest, token: str) -> PhoneCall:
        fault = self._take_fault(create.get("To") or "")
        if fault is not None and fault.status is not None:
            await asyncio.sleep(fault.delay_s)
            code, message = _FAULTS.get(fault.status, (fault.status, "Scripted failure"))
            raise TwilioError(fault.status, code, message)
        call_request = CallRequest.from_form(create.account_sid, token, _validated(create))
        callee = self.callees.get(call_request.to, self.default_callee)
        record = CallRecord("CA" + secrets.token_hex(16), call_request, callee)
        if self._http is None or self._group is None:
            raise TwilioError(503, 20503, "Service Unavailable")
        call = PhoneCall(record, self._http, self.webhook_timeout_s)
        self._calls[record.sid] = call
        self._group.create_task(call.run())
        log.info("call placed", call_sid=record.sid, callee=callee.kind)
        if fault is not None:  # placed, but the answer comes late
            await asyncio.sleep(fault.delay_s)
        return call

    def _take_fault(self, to: str) -> ApiFault | None:
        for faults in (self._number_faults.get(to), self._next_faults):
            if faults:
                return faults.popleft()
        return None

    async def _list(self, request: Request) -> Response:
        """The account's calls, newest first, filtered by `To` and `From` (one page)."""
        account_sid, _ = self._authenticate(request)
        query = request.query_params
        records = sorted(
            (
                call.record
                for call in self._calls.values()
                if call.record.request.account_sid == account_sid
                and query.get("To") in (None, call.record.request.to)
                and query.get("From") in (None, call.record.request.from_)
            ),
            key=lambda record: record.created,
            reverse=True,
        )
        size = min(int(query.get("PageSize", "50")), 1000)
        page = [call_json(record) for record in records[:size]]
        path = request.url.path
        return JSONResponse(
            {
                "calls": page,
                "start": 0,
                "end": max(len(page) - 1, 0),
                "page": 0,
                "page_size": size,
                "uri": path,
                "first_page_uri": f"{path}?PageSize={size}&Page=0",
                "next_page_uri": None,
                "previous_page_uri": None,
            }
        )

    async def _fetch(self, request: Request) -> Response:
        return JSONResponse(call_json(self._own_call(request).record))

    async def _update(self, request: Request) -> Response:
        call = self._own_call(request)
        form = {key: str(value) for key, value in (await request.form()).items()}
        status, record = form.get("Status"), call.record
        if status == "completed" or (
            status == "canceled" and record.status in ("queued", "ringing")
        ):
            call.hang_up("api")
            async with asyncio.timeout(5):  # Twilio answers with the call already ended
                await call.ended.wait()
        elif "Twiml" in form or "Url" in form:
            if record.status not in ("queued", "ringing", "in-progress"):
                raise TwilioError(400, 21220, "Call is not in-progress. Cannot redirect.")
            if "Twiml" in form:
                call.redirect(Document(_checked_twiml(form["Twiml"])))
            else:
                call.redirect(Fetch(_checked_url(form["Url"]), form.get("Method", "POST").upper()))
        return JSONResponse(call_json(record))

    def _own_call(self, request: Request) -> PhoneCall:
        account_sid, token = self._authenticate(request)
        call = self._calls.get(request.path_params["sid"])
        if call is None or call.record.request.account_sid != account_sid:
            raise TwilioError(
                404, 20404, f"The requested resource {request.url.path} was not found"
            )
        if self.auth_tokens is None and token != call.record.request.auth_token:
            raise TwilioError(401, 20003, "Authenticate")
        return call

    def _authenticate(self, request: Request) -> tuple[str, str]:
        """The account SID and auth token of the request's Basic auth; raises TwilioError 401
        when they are missing, not the path's account, or not the account's token."""
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            user, _, token = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = token = ""
        expected = None if self.auth_tokens is None else self.auth_tokens.get(user)
        if (
            scheme != "Basic"
            or user != request.path_params["account"]
            or not token
            or (self.auth_tokens is not None and not secrets.compare_digest(token, expected or ""))
        ):
            log.warning("REST request refused: bad credentials", path=request.url.path)
            raise TwilioError(401, 20003, "Authenticate")
        return user, token


async def _error_response(_: Request, error: Exception) -> Response:
    assert isinstance(error, TwilioError)
    return error.response()


async def _not_found(request: Request, _: Exception) -> Response:
    return TwilioError(
        404, 20404, f"The requested resource {request.url.path} was not found"
    ).response()


def _validated(create: CreateRequest) -> list[tuple[str, str]]:
    """The create form, once it has what Twilio requires; raises TwilioError 400 otherwise."""
    to, from_ = create.get("To"), create.get("From")
    if not to:
        raise TwilioError(400, 21201, "No 'To' number is specified")
    if not E164.match(to):
        raise TwilioError(400, 21211, f"Invalid 'To' Phone Number: {to[:40]}")
    if not from_:
        raise TwilioError(400, 21213, "No 'From' number is specified")
    if not E164.match(from_):
        raise TwilioError(400, 21212, f"Invalid 'From' Phone Number: {from_[:40]}")
    twiml, url = create.get("Twiml"), create.get("Url")
    if twiml is not None:
        _checked_twiml(twiml)
    elif url is not None:
        _checked_url(url)
    else:
        raise TwilioError(400, 21205, "Url parameter is required.")
    return create.fields


def _checked_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise TwilioError(400, 21205, f"Invalid Url: {url[:80]}")
    return url


def _checked_twiml(twiml: str) -> str:
    if len(twiml) > TWIML_MAX_CHARS:
        raise TwilioError(400, 21218, f"Twiml is longer than {TWIML_MAX_CHARS} characters")
    return twiml


@asynccontextmanager
async def serve_twilio_standin(
    standin: TwilioStandin | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[TwilioStandin]:
    """The stand-in under uvicorn (a free loopback port by default) for as long as the block
    runs; its `base_url` replaces https://api.twilio.com. Leaving it ends every call."""
    standin = standin or TwilioStandin()
    async with serve_app(standin.app(), host, port) as base_url:
        standin.base_url = base_url
        yield standin


def run_standin(
    listening: socket.socket,
    callees: Mapping[str, Callee] | None = None,
    default_callee: Callee | None = None,
) -> None:
    """Serve the stand-in on a bound socket until interrupted (Ctrl-C or SIGTERM). Every
    destination not in `callees` is answered by `default_callee` (a person who says "Hello?",
    then "Yes, I can talk now.", and waits for the agent to hang up)."""
    standin = TwilioStandin(callees=dict(callees or {}), default_callee=default_callee or Callee())
    config = uvicorn.Config(standin.app(), log_config=None, access_log=False, lifespan="on")
    host, port = listening.getsockname()[:2]
    log.info("Twilio stand-in listening", url=f"http://{host}:{port}")
    uvicorn.Server(config).run(sockets=[listening])
