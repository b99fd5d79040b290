"""How the failures of every OpenAI request become `ProviderError`, and how long a server asks
us to wait before trying again.

`provider_error()` is the one place where SDK, aiohttp, `websockets` and socket exceptions are
mapped (docs/openai.md §3).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TypeAlias

import aiohttp
import openai
from websockets.exceptions import InvalidStatus, WebSocketException

from voice_server.providers.base import ProviderError

MAX_RETRY_AFTER_S = 1.0  # the longest server-requested pause a live turn can afford


def retry_after_seconds(headers: Mapping[str, str]) -> float:
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

ProviderFailure: TypeAlias = openai.OpenAIError | aiohttp.ClientError | WebSocketException | OSError


def provider_error(error: ProviderFailure, provider: str) -> ProviderError:
    """Map any failure of an OpenAI call to the one error type callers handle.

    HTTP (docs/openai.md §3): status errors are retryable for 408, 409, 429 and 5xx; connection
    errors and timeouts always, the SDK's and those of aiohttp under `openai_live`.
    WebSocket (§3, not wrapped by the SDK): a handshake refused with a status is judged by that
    status; a dropped connection, a refused socket or our own `asyncio.timeout` (a
    `TimeoutError`, an `OSError`) is retryable.
    """
    if isinstance(error, openai.APIStatusError):
        return status_error(error.status_code, error.message, provider)
    if isinstance(error, InvalidStatus):
        return status_error(error.response.status_code, str(error), provider)
    if isinstance(error, openai.APITimeoutError | TimeoutError):
        return ProviderError("timed out", provider=provider, retryable=True)
    transport = openai.APIConnectionError | aiohttp.ClientError | WebSocketException | OSError
    if isinstance(error, transport):
        return ProviderError(f"connection failed: {error}", provider=provider, retryable=True)
    websocket_closed = openai.WebSocketConnectionClosedError | openai.WebSocketQueueFullError
    return ProviderError(
        str(error), provider=provider, retryable=isinstance(error, websocket_closed)
    )


def status_error(status: int, message: str, provider: str) -> ProviderError:
    """An HTTP error status as the one error type: retryable for 408, 409, 429 and 5xx."""
    retryable = status in _RETRYABLE_STATUS or status >= 500
    return ProviderError(f"HTTP {status}: {message}", provider=provider, retryable=retryable)
