"""Twilio's REST API, with each number's own credentials: the client, and SMS sends.

One aiohttp session serves the whole app, behind twilio's `AsyncHttpClient` seam; a
`twilio.rest.Client` is made per send, as it only holds the account's credentials. Sends that
finish after their webhook has answered (a slow LLM) run in a TaskGroup that `running()` holds
for the app's lifespan, so shutting the app down waits for them briefly instead of dropping them
silently, and none outlives the app.

Every failure (Twilio refusing the message, the network, a timeout) surfaces as `SendFailed`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from stores.phone_numbers import PhoneNumber, PhoneNumberStore
from stores.secrets import SecretUnreadable
from voice_server.log import get_logger
from voice_server.settings import Settings
from voice_server.twilio_api.twiml import xml_safe

SMS_MAX_CHARS = 1600  # the longest outbound body Twilio takes (docs/twilio.md §7)

log = get_logger(__name__)

REQUEST_TIMEOUT_S = 10.0
SHUTDOWN_GRACE_S = 10.0


class SendFailed(Exception):
    """Twilio did not take the message; `code` is Twilio's error code when it gave one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class SentSms:
    """Twilio's answer to a send: the new message's SID and its first status (`queued`)."""

    sid: str
    status: str


@dataclass(frozen=True)
class Credentials:
    account_sid: str
    auth_token: str


def number_credentials(phone_numbers: PhoneNumberStore, number: PhoneNumber) -> Credentials:
    """The number's own Twilio credentials. Raises SendFailed if its token cannot be opened."""
    try:
        return Credentials(number.twilioAccountSid, phone_numbers.auth_token(number))
    except SecretUnreadable as error:
        raise SendFailed("the number's auth token was sealed under another key") from error


def status_callback_url(settings: Settings) -> str:
    """Where Twilio reports an outbound message's delivery status (`voice_server.sms`)."""
    return f"{settings.base_url}/twilio/sms-status"


class _AiohttpTwilioClient(AsyncHttpClient):  # type: ignore[misc]  # twilio is untyped
    """twilio's HTTP seam over one aiohttp session. (twilio's own `AsyncTwilioHttpClient`
    authenticates with `aiohttp.BasicAuth`, which aiohttp 3.14 deprecates: a warning per send.)"""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(logging.getLogger("twilio.http"), is_async=True, timeout=timeout_s)
        self._session = aiohttp.ClientSession()

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (the seam's name: twilio passes it)
        allow_redirects: bool = False,
    ) -> Response:
        sent = dict(headers or {})
        if auth is not None:
            pair = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            sent["Authorization"] = f"Basic {pair}"
        async with self._session.request(
            method.upper(),
            url,
            params=params,
            data=data,
            headers=sent,
            allow_redirects=allow_redirects,
            timeout=aiohttp.ClientTimeout(total=timeout or self.timeout),
        ) as response:
            return Response(response.status, await response.text(), response.headers)

    async def close(self) -> None:
        await self._session.close()


async def _logged(work: Coroutine[Any, Any, None]) -> None:
    try:
        await work
    except Exception as error:  # one late send's failure must not cancel the others' TaskGroup
        log.error("late SMS work failed", error=repr(error), exc_info=error)


class TwilioRest:
    """Twilio's REST API for any number's credentials, and SMS sends; `api_base_url` replaces
    https://api.twilio.com (a local stand-in in tests and the demo)."""

    def __init__(self, api_base_url: str | None, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self._http = _AiohttpTwilioClient(timeout_s)
        self._api_base_url = api_base_url
        self._group: asyncio.TaskGroup | None = None
        self._later: set[asyncio.Task[None]] = set()

    def client(self, credentials: Credentials) -> Client:
        """A client for one account, on the app's HTTP session (cheap: it holds credentials)."""
        client = Client(
            credentials.account_sid,
            credentials.auth_token,
            http_client=self._http,
            environment={},  # never TWILIO_* from the environment: settings.py reads it
        )
        if self._api_base_url is not None:
            client.api.base_url = self._api_base_url
        return client

    async def send(
        self, credentials: Credentials, *, from_: str, to: str, body: str, status_callback: str
    ) -> SentSms:
        """POST …/Accounts/{sid}/Messages.json, `body` without what XML cannot carry (Twilio
        hands it on as XML). Raises SendFailed."""
        client = self.client(credentials)
        try:
            message = await client.messages.create_async(
                to=to, from_=from_, body=xml_safe(body), status_callback=status_callback
            )
        except TwilioRestException as error:
            raise SendFailed(f"Twilio refused the message: {error.msg}", error.code) from error
        except (aiohttp.ClientError, TimeoutError) as error:
            raise SendFailed(f"Twilio could not be reached: {error!r}") from error
        return SentSms(sid=str(message.sid), status=str(message.status or "queued"))

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Own the late sends for the life of the block (the app's lifespan), in one TaskGroup.
        Leaving it gives pending sends `SHUTDOWN_GRACE_S` to finish, then cancels the rest."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            try:
                yield
            finally:
                self._group = None
                await self._finish_late_work()

    def later(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in `running()`'s TaskGroup, past the current request's answer. Raises
        RuntimeError outside `running()` (the app is not serving)."""
        if self._group is None:
            work.close()
            raise RuntimeError("late SMS work needs TwilioMessaging.running()")
        task = self._group.create_task(_logged(work))
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    async def _finish_late_work(self) -> None:
        if self._later:
            _, pending = await asyncio.wait(self._later, timeout=SHUTDOWN_GRACE_S)
            for task in pending:
                log.warning("late SMS reply cancelled at shutdown", task=task.get_name())
                task.cancel()

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self._http.close()
