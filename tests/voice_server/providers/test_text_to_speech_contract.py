"""The `TextToSpeech` contract, checked against every implementation.

From `providers/base.py`: `(sample_rate_hz, pcm16 mono little-endian)` pieces of any size, in
order; closing the iterator stops synthesis (the server sees the disconnect, the child process
is gone); failures are `ProviderError`s whose `retryable` says whether to try again; cancelling
the consumer ends it at once and leaves no task or process behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field

import pytest

from voice_server.providers.base import ProviderError, TextToSpeech, TtsRequest
from voice_server.providers.local import EspeakTextToSpeech
from voice_server.providers.openai_registry import OpenAiProviders

from ..fakes import ToneTextToSpeech
from ..openai_fakes import FakeOpenAiHttp, HttpFailure
from .contract import PROMPTLY_S, cancel_promptly, child_processes, our_tasks

LONG_TEXT = "This answer goes on for a while, sentence after sentence. " * 8


@dataclass
class Tts:
    """One implementation under test, and what its surroundings let the checks see and do."""

    tts: TextToSpeech
    model: str
    voice: str
    rates: set[int]
    disconnected: Callable[[], Awaitable[object]] | None = None  # the far side saw the close
    stall: Callable[[], None] = lambda: None  # after this, the stream stops midway for good
    failures: dict[str, tuple[Callable[[], TtsRequest], bool]] = field(default_factory=dict)

    def request(self, text: str) -> TtsRequest:
        return TtsRequest(model=self.model, voice=self.voice, text=text)


def _openai(providers: OpenAiProviders, fake: FakeOpenAiHttp) -> Tts:
    def failing(status: int, count: int) -> Callable[[], TtsRequest]:
        def arrange() -> TtsRequest:
            fake.failures.extend([HttpFailure(status)] * count)
            return TtsRequest("gpt-4o-mini-tts", "marin", "Hi.")

        return arrange

    def stall() -> None:
        fake.stall_after = 1

    return Tts(
        providers.tts,
        "gpt-4o-mini-tts",
        "marin",
        {24_000},
        disconnected=fake.abandoned.wait,
        stall=stall,
        failures={"refused": (failing(400, 1), False), "unavailable": (failing(503, 2), True)},
    )


def _espeak() -> Tts:
    espeak = EspeakTextToSpeech()
    return Tts(
        espeak,
        "espeak-ng",
        "en-us",
        {22_050},
        failures={
            "unknown voice": (lambda: TtsRequest("espeak-ng", "xx-no-such-voice", "Hi."), False),
        },
    )


@pytest.fixture(params=["espeak-ng", "openai", "tone-fake"])
def subject(
    request: pytest.FixtureRequest, openai_providers: OpenAiProviders, http_fake: FakeOpenAiHttp
) -> Tts:
    if request.param == "openai":
        return _openai(openai_providers, http_fake)
    if request.param == "espeak-ng":
        return _espeak()
    return Tts(ToneTextToSpeech(), "tone", "tone", {8000})


async def test_yields_pcm16_at_a_declared_rate(subject: Tts) -> None:
    pieces = [piece async for piece in subject.tts.stream(subject.request("Hello there."))]

    assert pieces
    assert {rate for rate, _ in pieces} <= subject.rates
    assert all(isinstance(pcm, bytes) for _, pcm in pieces)
    pcm = b"".join(pcm for _, pcm in pieces)
    assert pcm
    assert len(pcm) % 2 == 0  # whole 16-bit samples, however the pieces were cut


async def test_closing_early_stops_synthesis(subject: Tts) -> None:
    children = child_processes()
    subject.stall()
    async with aclosing(subject.tts.stream(subject.request(LONG_TEXT))) as pieces:
        await anext(pieces)

    assert child_processes() <= children
    if subject.disconnected is not None:
        async with asyncio.timeout(PROMPTLY_S):
            await subject.disconnected()


async def test_failures_are_provider_errors(subject: Tts) -> None:
    if not subject.failures:
        pytest.skip("nothing can make this implementation fail")
    for name, (arrange, retryable) in subject.failures.items():
        with pytest.raises(ProviderError) as raised:
            [_ async for _ in subject.tts.stream(arrange())]
        assert raised.value.retryable is retryable, name


async def test_cancelling_the_consumer_ends_it_at_once(subject: Tts) -> None:
    children, tasks = child_processes(), our_tasks()
    subject.stall()
    first = asyncio.Event()

    async def consume() -> None:
        async with aclosing(subject.tts.stream(subject.request(LONG_TEXT))) as pieces:
            async for _ in pieces:
                first.set()
        await asyncio.Event().wait()  # all heard: the consumer is busy elsewhere

    consumer = asyncio.create_task(consume())
    await first.wait()
    await cancel_promptly(consumer)

    assert child_processes() <= children
    assert our_tasks() <= tasks
    if subject.disconnected is not None:
        async with asyncio.timeout(PROMPTLY_S):
            await subject.disconnected()
