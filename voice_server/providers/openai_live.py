"""The two requests a caller waits on, a turn's chat completion and each sentence's speech, sent
straight over aiohttp rather than through the SDK.

Both are a JSON POST answered by a streamed body. Through the SDK each one went through its
typed-parameter transform, httpx2's request and URL models and the SDK's httpx2-to-aiohttp
adapter, a tenth of the server's profile at 200 calls (a speech request per sentence); sent
here, the server takes 15-17 % less CPU for the same calls (`scripts/bench`, alternating runs).
Here the URL and headers are made once per endpoint from the SDK's own client (its
base URL, key, organisation, project and identifying headers) and the body by orjson, with the
endpoint's timeouts and the SDK's retry policy: up to `max_retries` more attempts after a
failed connection, a timeout, or a 408, 409, 429 or 5xx (a server's `x-should-retry` decides
first), after the server's Retry-After when it gives one a live turn can wait for and after a
short backoff when it gives none. A request is never retried once its body has begun to stream.

The SDK keeps everything else: the Realtime WebSockets, transcription uploads, model checks.
"""

from __future__ import annotations

import asyncio
import random
import urllib.request
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
import httpx2
import orjson
from openai import AsyncOpenAI

from voice_server.providers.base import ProviderError
from voice_server.providers.openai_errors import (
    MAX_RETRY_AFTER_S,
    provider_error,
    retry_after_seconds,
    status_error,
)

BACKOFF_S = 0.5
"""The pause before a retry when the server names none, as the SDK's: doubled for each earlier
retry, less up to a quarter at random."""


@dataclass(frozen=True, slots=True)
class LiveTuning:
    """Timeouts (seconds) and retries for requests made while a caller waits."""

    total_s: float = 10.0
    connect_s: float = 2.0
    read_s: float = 5.0
    max_retries: int = 1

    def timeout(self) -> httpx2.Timeout:
        """The same as the SDK's client takes them."""
        return httpx2.Timeout(self.total_s, connect=self.connect_s, read=self.read_s)


READ_BYTES = 16 * 1024
"""The most of a body read at once (`StreamReader.iter_chunked`), as the SDK's transport reads
it. Speech arrives faster than it plays; reading all that had arrived at once (`iter_any`)
made the server's memory grow by a quarter of a megabyte per call at 200 calls."""


class _Failed(Exception):
    """An attempt failed with `error`; `retry_in` is the pause before the next one, None when
    this failure must not be retried."""

    def __init__(self, error: ProviderError, retry_in: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_in = retry_in


class LiveRequests:
    """Streamed POSTs to one endpoint over one aiohttp session, made on first use (it belongs
    to the event loop that uses it); `aclose()` closes it."""

    def __init__(self, client: AsyncOpenAI, tuning: LiveTuning) -> None:
        self._base_url = str(client.base_url).rstrip("/")
        headers = {
            name: value for name, value in client.default_headers.items() if isinstance(value, str)
        }
        self._headers = {**headers, "Authorization": f"Bearer {client.api_key}"}
        self._tuning = tuning
        self._timeout = aiohttp.ClientTimeout(
            connect=tuning.total_s, sock_connect=tuning.connect_s, sock_read=tuning.read_s
        )
        self._proxy = env_proxy(self._base_url)
        self._session: aiohttp.ClientSession | None = None

    @asynccontextmanager
    async def post(
        self, path: str, body: Mapping[str, object], provider: str
    ) -> AsyncIterator[aiohttp.StreamReader]:
        """Post `body` to `path` (below the base URL) and give its response's body as it
        streams. Raises `ProviderError`. Leaving the block before the body's end drops the
        connection, so the server stops generating."""
        response = await self._answered(f"{self._base_url}/{path}", orjson.dumps(body), provider)
        try:
            yield response.content
        except (aiohttp.ClientError, TimeoutError) as error:
            raise provider_error(error, provider) from error
        finally:
            response.release()  # back to the pool when read to its end, else closed

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _answered(self, url: str, data: bytes, provider: str) -> aiohttp.ClientResponse:
        retry = 0
        while True:
            try:
                return await self._attempt(url, data, provider, retry)
            except _Failed as failed:
                if failed.retry_in is None or retry == self._tuning.max_retries:
                    raise failed.error from failed.__cause__
                await asyncio.sleep(failed.retry_in)
            retry += 1

    def _open_session(self) -> aiohttp.ClientSession:
        """The SDK's connection limit and trust store, over aiohttp. Not aiohttp's `trust_env`:
        it reads `~/.netrc` and the proxy settings in a thread for every request (a tenth of
        the server's CPU at 200 calls); the proxy is read once instead (`env_proxy`)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=1000, ssl=httpx2.create_ssl_context())
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def _attempt(
        self, url: str, data: bytes, provider: str, retry: int
    ) -> aiohttp.ClientResponse:
        backoff = BACKOFF_S * 2.0**retry * (1 - 0.25 * random.random())
        try:
            response = await self._open_session().post(
                url, data=data, headers=self._headers, timeout=self._timeout, proxy=self._proxy
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise _Failed(provider_error(error, provider), backoff) from error
        if response.status < 400:
            return response
        try:
            text = await response.text(errors="replace")
        except (aiohttp.ClientError, TimeoutError):
            text = ""
        finally:
            response.release()
        refused = status_error(response.status, _message(text), provider)
        pause = retry_after_seconds(response.headers)
        should = response.headers.get("x-should-retry")
        if should == "false" or pause > MAX_RETRY_AFTER_S:
            raise _Failed(refused, None)
        if should == "true" or refused.retryable:
            raise _Failed(refused, pause or backoff)
        raise _Failed(refused, None)


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for `url` (`HTTPS_PROXY` or `HTTP_PROXY` by its scheme,
    unless `NO_PROXY` covers its host), as the SDK's httpx2 client would use it."""
    parts = urlsplit(url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def _message(text: str) -> str:
    """The `error.message` of an error's JSON body, or the body itself."""
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) else text.strip()[:500]
