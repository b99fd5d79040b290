"""The OpenAI clients of a process, and how their failures become `ProviderError`.

`OpenAiClients` holds one `AsyncOpenAI` per endpoint (key, base URL, WebSocket base URL, tuning),
built on first use and kept for the life of the process, so connection pools and TLS sessions
stay warm (docs/openai.md §1). Every client is tuned for a live call: short timeouts and at most
one retry. The SDK honours a server's `Retry-After` of up to 120 s before retrying
(`openai/_base_client.py:_calculate_retry_timeout`), which would stall a caller for minutes; a
response hook marks such responses `x-should-retry: false` (obeyed by `_should_retry`), so the
call falls back at once instead.

Requests go over aiohttp, through the SDK's own `DefaultAioHttpClient` (its `aiohttp` extra),
not its default httpx2 and httpcore2: a turn makes one chat request and a TTS request per
sentence, and over aiohttp the server took 16 % less CPU for the same calls (two servers on
one core, 70 calls each, `scripts/bench`). Timeouts keep their meaning: `connect_s` for the
connection, `read_s` between two reads, `total_s` for a free connection from the pool.

`provider_error()` is the one place where SDK, `websockets` and socket exceptions are mapped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeAlias

import httpx2
import openai
from openai import AsyncOpenAI, DefaultAioHttpClient
from websockets.exceptions import InvalidStatus, WebSocketException

from voice_server.providers.base import ProviderError

MAX_RETRY_AFTER_S = 1.0  # the longest server-requested pause a live turn can afford


@dataclass(frozen=True, slots=True)
class LiveTuning:
    """Timeouts (seconds) and retries for requests made while a caller waits."""

    total_s: float = 10.0
    connect_s: float = 2.0
    read_s: float = 5.0
    max_retries: int = 1

    def timeout(self) -> httpx2.Timeout:
        return httpx2.Timeout(self.total_s, connect=self.connect_s, read=self.read_s)


@dataclass(frozen=True, slots=True)
class OpenAiEndpoint:
    """Where one client talks to: OpenAI itself, or a compatible server by `base_url`."""

    api_key: str
    base_url: str | None = None
    websocket_base_url: str | None = None
    tuning: LiveTuning = LiveTuning()


class OpenAiClients:
    """One `AsyncOpenAI` per endpoint for the whole process; `aclose()` closes them all.

    With `http_client` given, every client shares it (tests, custom transports) and the owner
    closes it; the retry guard is added to its response hooks.
    """

    def __init__(self, *, http_client: httpx2.AsyncClient | None = None) -> None:
        self._http_client = http_client
        self._clients: dict[OpenAiEndpoint, AsyncOpenAI] = {}
        if http_client is not None:
            hooks = http_client.event_hooks
            http_client.event_hooks = {**hooks, "response": [*hooks["response"], _guard_retry]}

    def client(self, endpoint: OpenAiEndpoint) -> AsyncOpenAI:
        if (client := self._clients.get(endpoint)) is None:
            client = self._clients[endpoint] = self._build(endpoint)
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        if self._http_client is None:
            for client in clients:
                await client.close()

    def _build(self, endpoint: OpenAiEndpoint) -> AsyncOpenAI:
        timeout = endpoint.tuning.timeout()
        http_client = self._http_client or DefaultAioHttpClient(
            timeout=timeout, event_hooks={"response": [_guard_retry]}
        )
        return AsyncOpenAI(
            api_key=endpoint.api_key,
            base_url=endpoint.base_url,
            websocket_base_url=endpoint.websocket_base_url,
            timeout=timeout,
            max_retries=endpoint.tuning.max_retries,
            http_client=http_client,
        )


async def _guard_retry(response: httpx2.Response) -> None:
    """Forbid the SDK's retry when the server asks for a pause longer than a live turn allows."""
    if retry_after_seconds(response.headers) > MAX_RETRY_AFTER_S:
        response.headers["x-should-retry"] = "false"


def retry_after_seconds(headers: httpx2.Headers) -> float:
    """The pause a response asks for (`retry-after-ms`, then `retry-after`); 0 when none, and
    infinite for an HTTP date or anything unreadable, which no live call can wait for."""
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        if (value := headers.get(name)) is not None:
            try:
                seconds = float(value) / divisor
            except ValueError:
                return math.inf
            return seconds if math.isfinite(seconds) else math.inf
    return 0.0


_RETRYABLE_STATUS = frozenset({408, 409, 429})

ProviderFailure: TypeAlias = (
    openai.OpenAIError | httpx2.TransportError | WebSocketException | OSError
)


def provider_error(error: ProviderFailure, provider: str) -> ProviderError:
    """Map any failure of an OpenAI call to the one error type callers handle.

    HTTP (docs/openai.md §3): status errors are retryable for 408, 409, 429 and 5xx; connection
    errors and timeouts always, including the raw `httpx2` ones a streamed body raises while it
    is read (`with_streaming_response` does not wrap them). WebSocket (§3, not wrapped by the
    SDK): a handshake refused with a status is judged by that status; a dropped connection, a
    refused socket or our own `asyncio.timeout` (a `TimeoutError`, an `OSError`) is retryable.
    """
    if isinstance(error, openai.APIStatusError):
        return _status_error(error.status_code, error.message, provider)
    if isinstance(error, InvalidStatus):
        return _status_error(error.response.status_code, str(error), provider)
    if isinstance(error, openai.APITimeoutError | httpx2.TimeoutException | TimeoutError):
        return ProviderError("timed out", provider=provider, retryable=True)
    transport = openai.APIConnectionError | httpx2.TransportError | WebSocketException | OSError
    if isinstance(error, transport):
        return ProviderError(f"connection failed: {error}", provider=provider, retryable=True)
    websocket_closed = openai.WebSocketConnectionClosedError | openai.WebSocketQueueFullError
    return ProviderError(
        str(error), provider=provider, retryable=isinstance(error, websocket_closed)
    )


def _status_error(status: int, message: str, provider: str) -> ProviderError:
    retryable = status in _RETRYABLE_STATUS or status >= 500
    return ProviderError(f"HTTP {status}: {message}", provider=provider, retryable=retryable)
