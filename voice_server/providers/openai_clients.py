"""The OpenAI clients of a process, one set per endpoint.

`OpenAiClients` holds, per endpoint (key, base URL, WebSocket base URL, tuning), one
`AsyncOpenAI` and one `LiveRequests` (`openai_live`: the chat and speech requests a caller waits
on), each built on first use and kept for the life of the process, so connection pools and TLS
sessions stay warm (docs/openai.md §1). Every client is tuned for a live call: short timeouts
and at most one retry. The SDK honours a server's `Retry-After` of up to 120 s before retrying
(`openai/_base_client.py:_calculate_retry_timeout`), which would stall a caller for minutes; a
response hook marks such responses `x-should-retry: false` (obeyed by `_should_retry`), so the
call falls back at once instead.

The SDK's own HTTP requests (utterance transcriptions) go over aiohttp too, through its
`DefaultAioHttpClient` (its `aiohttp` extra), with the same timeouts: `connect_s` for the
connection, `read_s` between two reads, `total_s` for a free connection from the pool.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx2
from openai import AsyncOpenAI, DefaultAioHttpClient

from voice_server.providers.openai_errors import MAX_RETRY_AFTER_S, retry_after_seconds
from voice_server.providers.openai_live import LiveRequests, LiveTuning


@dataclass(frozen=True, slots=True)
class OpenAiEndpoint:
    """Where one client talks to: OpenAI itself, or a compatible server by `base_url`."""

    api_key: str
    base_url: str | None = None
    websocket_base_url: str | None = None
    tuning: LiveTuning = field(default_factory=LiveTuning)


class OpenAiClients:
    """One `AsyncOpenAI` and one `LiveRequests` per endpoint for the whole process; `aclose()`
    closes them all."""

    def __init__(self) -> None:
        self._clients: dict[OpenAiEndpoint, AsyncOpenAI] = {}
        self._live: dict[OpenAiEndpoint, LiveRequests] = {}

    def client(self, endpoint: OpenAiEndpoint) -> AsyncOpenAI:
        if (client := self._clients.get(endpoint)) is None:
            client = self._clients[endpoint] = self._build(endpoint)
        return client

    def live(self, endpoint: OpenAiEndpoint) -> LiveRequests:
        """The endpoint's chat and speech requests, with the SDK client's URL and headers."""
        if (live := self._live.get(endpoint)) is None:
            live = self._live[endpoint] = LiveRequests(self.client(endpoint), endpoint.tuning)
        return live

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        live, self._live = list(self._live.values()), {}
        for requests in live:
            await requests.aclose()
        for client in clients:
            await client.close()

    def _build(self, endpoint: OpenAiEndpoint) -> AsyncOpenAI:
        timeout = endpoint.tuning.timeout()
        return AsyncOpenAI(
            api_key=endpoint.api_key,
            base_url=endpoint.base_url,
            websocket_base_url=endpoint.websocket_base_url,
            timeout=timeout,
            max_retries=endpoint.tuning.max_retries,
            http_client=DefaultAioHttpClient(
                timeout=timeout, event_hooks={"response": [_guard_retry]}
            ),
        )


async def _guard_retry(response: httpx2.Response) -> None:
    """Forbid the SDK's retry when the server asks for a pause longer than a live turn allows."""
    if retry_after_seconds(response.headers) > MAX_RETRY_AFTER_S:
        response.headers["x-should-retry"] = "false"
