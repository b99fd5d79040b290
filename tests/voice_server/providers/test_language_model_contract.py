"""The `LanguageModel` contract, checked against every implementation.

From `providers/base.py`: the answer's text as it is generated, and `LlmUsage` filled in as the
stream ends; closing the iterator closes the request (the server sees the disconnect); failures
are `ProviderError`s whose `retryable` says whether to try again; cancelling the consumer ends it
at once and leaves no task behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field

import pytest

from voice_server.providers.base import (
    ChatMessage,
    LanguageModel,
    LlmRequest,
    LlmUsage,
    ProviderError,
)
from voice_server.providers.local import StandInLanguageModel
from voice_server.providers.openai_registry import OpenAiProviders

from ..fakes import HangingLanguageModel
from ..openai_fakes import FakeOpenAiHttp, HttpFailure, text_deltas
from .contract import PROMPTLY_S, cancel_promptly, our_tasks


@dataclass
class Llm:
    """One implementation under test, and what its surroundings let the checks see and do."""

    llm: LanguageModel
    model: str
    answers: bool = True  # False: a fake that hangs by design, for the cancellation check only
    streaming: Callable[[asyncio.Event], Awaitable[object]] = asyncio.Event.wait
    disconnected: Callable[[], Awaitable[object]] | None = None  # the far side saw the close
    stall: Callable[[], None] = lambda: None  # after this, the stream stops midway for good
    failures: dict[int, bool] = field(default_factory=dict)  # HTTP status → retryable

    def request(self) -> LlmRequest:
        return LlmRequest(
            self.model, [ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")]
        )


def _openai(providers: OpenAiProviders, fake: FakeOpenAiHttp) -> Llm:
    fake.chat_deltas = text_deltas(*[f" word{n}" for n in range(20)])

    def stall() -> None:
        fake.stall_after = 2

    return Llm(
        providers.llm,
        "gpt-5.4-mini",
        disconnected=fake.abandoned.wait,
        stall=stall,
        failures={400: False, 429: True, 503: True},
    )


def _hanging() -> Llm:
    hanging = HangingLanguageModel()
    return Llm(hanging, "hanging", answers=False, streaming=lambda _: hanging.started.wait())


@pytest.fixture(params=["stand-in", "openai", "hanging-fake"])
def subject(
    request: pytest.FixtureRequest, openai_providers: OpenAiProviders, http_fake: FakeOpenAiHttp
) -> Llm:
    if request.param == "openai":
        return _openai(openai_providers, http_fake)
    if request.param == "hanging-fake":
        return _hanging()
    return Llm(StandInLanguageModel(), "stand-in")


async def test_yields_text_and_fills_usage(subject: Llm) -> None:
    if not subject.answers:
        pytest.skip("hangs by design")
    usage = LlmUsage()
    pieces = [piece async for piece in subject.llm.stream(subject.request(), usage)]

    assert all(isinstance(piece, str) for piece in pieces)
    assert "".join(pieces).strip()
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens > 0


async def test_closing_early_closes_the_request(subject: Llm) -> None:
    if not subject.answers:
        pytest.skip("hangs by design")
    tasks = our_tasks()
    subject.stall()
    async with aclosing(subject.llm.stream(subject.request(), LlmUsage())) as pieces:
        await anext(pieces)

    assert our_tasks() <= tasks
    if subject.disconnected is not None:
        async with asyncio.timeout(PROMPTLY_S):
            await subject.disconnected()


@pytest.mark.parametrize("status", [400, 429, 503])
async def test_failures_are_provider_errors(
    subject: Llm, http_fake: FakeOpenAiHttp, status: int
) -> None:
    if status not in subject.failures:
        pytest.skip("nothing can make this implementation fail")
    http_fake.fail_chat = HttpFailure(status)
    with pytest.raises(ProviderError) as raised:
        [_ async for _ in subject.llm.stream(subject.request(), LlmUsage())]

    assert raised.value.retryable is subject.failures[status]


async def test_cancelling_the_consumer_ends_it_at_once(subject: Llm) -> None:
    tasks = our_tasks()
    subject.stall()
    first = asyncio.Event()

    async def consume() -> None:
        async with aclosing(subject.llm.stream(subject.request(), LlmUsage())) as pieces:
            async for _ in pieces:
                first.set()
        await asyncio.Event().wait()  # all read: the consumer is busy elsewhere

    consumer = asyncio.create_task(consume())
    await subject.streaming(first)
    await cancel_promptly(consumer)

    assert our_tasks() <= tasks
    if subject.disconnected is not None:
        async with asyncio.timeout(PROMPTLY_S):
            await subject.disconnected()
