"""A minimal Server-Sent Events reader over an httpx streaming response, for tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Event:
    name: str
    data: Any
    id: str | None


async def read_events(response: httpx.Response) -> AsyncIterator[Event]:
    """The events of `response` as they arrive (comments and `retry:` lines skipped)."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line:
            if not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
            continue
        if "data" in fields:
            yield Event(
                fields.get("event", "message"), json.loads(fields["data"]), fields.get("id")
            )
        fields = {}
