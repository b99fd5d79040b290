"""The greeting cache: one render per agent version, shared by calls, never poisoned by one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import UTC, datetime

import pytest

from stores.agents import Agent
from tests.stores.factories import agent
from voice_server.call.greetings import GreetingCache
from voice_server.providers.base import ProviderError, TtsRequest


class GatedTextToSpeech:
    """Speaks only once `gate` is set; counts its requests."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.requests = 0

    async def stream(self, request: TtsRequest) -> AsyncGenerator[tuple[int, bytes], None]:
        self.requests += 1
        await self.gate.wait()
        yield 8000, bytes(3200)


SILENCE = b"\xff" * 1600  # 3200 bytes of PCM zeros at 8 kHz, as μ-law


def front_desk() -> Agent:
    now = datetime.now(UTC)
    fields = agent("+15551234567").model_dump()
    return Agent.model_validate(
        {**fields, "id": "a1", "isDeleted": False, "created_at": now, "updated_at": now}
    )


async def test_one_render_per_agent_version_is_shared() -> None:
    tts, cache, desk = GatedTextToSpeech(), GreetingCache(), front_desk()
    first = cache.prepare(desk, tts)
    second = cache.prepare(desk, tts)
    tts.gate.set()

    assert await first == SILENCE
    assert await second == SILENCE
    assert tts.requests == 1
    await cache.close()


async def test_a_call_that_gives_up_waiting_does_not_cancel_the_shared_render() -> None:
    tts, cache, desk = GatedTextToSpeech(), GreetingCache(), front_desk()
    hung_up = cache.prepare(desk, tts)

    async def wait() -> bytes | None:
        return await hung_up

    waiting = asyncio.create_task(wait())
    await asyncio.sleep(0)  # one loop step: the waiter is now awaiting the render
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    next_call = cache.prepare(desk, tts)
    tts.gate.set()

    assert await next_call == SILENCE
    assert tts.requests == 1
    await cache.close()


class FailingTextToSpeech:
    def __init__(self) -> None:
        self.requests = 0

    async def stream(self, request: TtsRequest) -> AsyncGenerator[tuple[int, bytes], None]:
        self.requests += 1
        raise ProviderError("unavailable", provider="test-tts")
        yield 8000, b""


async def test_a_failed_render_is_tried_again_by_the_next_call() -> None:
    tts, cache, desk = FailingTextToSpeech(), GreetingCache(), front_desk()

    assert await cache.prepare(desk, tts) is None
    assert await cache.prepare(desk, tts) is None
    assert tts.requests == 2
    await cache.close()
