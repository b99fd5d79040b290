"""Server events of OpenAI's Realtime API, read raw: one JSON object per WebSocket message.

The SDK's `recv()` builds a typed model of every event (about 40 µs each, against 0.4 for
orjson), and a call receives several a second, while our sessions read a few fields of a few
kinds. Fields are read leniently, as the SDK's own parsing does: a missing or mistyped field
reads as empty, and only a message that is not a JSON object is dropped (and logged).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from websockets.exceptions import ConnectionClosedOK

from voice_server.log import get_logger

log = get_logger(__name__)

Event = dict[str, Any]


async def server_events(connection: AsyncRealtimeConnection, session: str) -> AsyncIterator[Event]:
    """The connection's events until it closes normally (then the iteration ends); a failed
    connection raises what `websockets` or the SDK raise. `session` names it in logs."""
    while True:
        try:
            message = await connection.recv_bytes()
        except ConnectionClosedOK:
            return
        try:
            event = orjson.loads(message)
        except orjson.JSONDecodeError:
            log.warning("Realtime event that is not JSON ignored", session=session)
            continue
        if not isinstance(event, dict):
            log.warning("Realtime event that is not an object ignored", session=session)
            continue
        yield event


def text(event: Event, key: str) -> str:
    """A string field; "" when missing or not a string."""
    value = event.get(key)
    return value if isinstance(value, str) else ""


def number(event: Event, key: str) -> int:
    """A whole-number field; 0 when missing or not a number."""
    value = event.get(key)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def part(event: Event, key: str) -> Event:
    """A nested object; empty when missing or not an object."""
    value = event.get(key)
    return value if isinstance(value, dict) else {}
