"""The `SpeechToText` contract, checked against every implementation.

From `providers/base.py`: 20 ms frames of 8 kHz μ-law in (160 bytes), partial and final
`SttResult`s out, one final per utterance; leaving the session's block closes it and its
connection (the server sees it); failures are `ProviderError`s whose `retryable` says whether to
try again; cancelling the reader, or the session's owner while the session closes, ends it at
once and leaves no task behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from media.codec import FRAME_BYTES
from voice_server.providers.base import (
    ProviderError,
    SpeechToText,
    SttOptions,
    SttResult,
    SttSession,
)
from voice_server.providers.local import PocketSphinxSpeechToText
from voice_server.providers.local_whisper import STT_MODEL as WHISPER_MODEL
from voice_server.providers.local_whisper import WhisperSpeechToText
from voice_server.providers.openai_registry import OpenAiProviders

from ..fakes import EchoingSpeechToText
from ..openai_fakes import FakeOpenAiHttp, FakeRealtime, HttpFailure
from .contract import PROMPTLY_S, cancel_promptly, our_tasks

UTTERANCE_FRAMES = 50  # one second: the Realtime stand-in's server VAD ends an utterance there


@dataclass
class Stt:
    """One implementation under test, and what its surroundings let the checks see and do."""

    stt: SpeechToText
    model: str
    disconnected: Callable[[], Awaitable[object]] | None = None  # the far side saw the close
    failures: dict[str, tuple[Callable[[], None], bool]] = field(default_factory=dict)

    def options(self) -> SttOptions:
        return SttOptions(model=self.model)


def speak(session: SttSession, start: int = 0) -> None:
    """One utterance of distinct frames, delimited as the call's VAD would."""
    session.speech_started()
    for n in range(start, start + UTTERANCE_FRAMES):
        session.push_audio(bytes([n % 256]) * FRAME_BYTES, speech=True)
    session.speech_ended()


async def next_final(session: SttSession) -> SttResult:
    async with asyncio.timeout(10):  # local recognisers decode in a thread: generous, never slept
        async for result in session.results():
            assert isinstance(result, SttResult)
            assert isinstance(result.text, str)
            if result.final:
                return result
    raise AssertionError("results ended")


async def hear_one(subject: Stt) -> SttResult:
    async with subject.stt.open_session(subject.options()) as session:
        speak(session)
        return await next_final(session)


def _realtime(providers: OpenAiProviders, fake: FakeRealtime) -> Stt:
    fake.transcripts.extend(["one", "two", "three"])

    def dropped() -> None:
        fake.drop_after_bytes = 5 * FRAME_BYTES

    return Stt(
        providers.stt,
        "gpt-4o-mini-transcribe",
        disconnected=fake.closed.wait,
        failures={"dropped socket": (dropped, True)},
    )


def _utterance(providers: OpenAiProviders, fake: FakeOpenAiHttp) -> Stt:
    fake.transcripts.extend(["one", "two", "three"])

    def failing(status: int, count: int) -> Callable[[], None]:
        return lambda: fake.failures.extend([HttpFailure(status)] * count)

    failures = {"refused": (failing(400, 1), False), "unavailable": (failing(500, 2), True)}
    return Stt(providers.stt, "whisper-1", failures=failures)


@pytest.fixture(
    params=["pocketsphinx", "faster-whisper", "openai-realtime", "openai-http", "echoing-fake"]
)
def subject(
    request: pytest.FixtureRequest,
    openai_providers: OpenAiProviders,
    http_fake: FakeOpenAiHttp,
    realtime_fake: FakeRealtime,
) -> Stt:
    if request.param == "openai-realtime":
        return _realtime(openai_providers, realtime_fake)
    if request.param == "openai-http":
        return _utterance(openai_providers, http_fake)
    if request.param == "echoing-fake":
        return Stt(EchoingSpeechToText({}), "echo")
    if request.param == "faster-whisper":
        return Stt(WhisperSpeechToText(), WHISPER_MODEL)
    return Stt(PocketSphinxSpeechToText(), "pocketsphinx")


async def test_each_utterance_gives_one_final(subject: Stt) -> None:
    async with subject.stt.open_session(subject.options()) as session:
        finals = []
        for utterance in range(2):
            speak(session, start=utterance * UTTERANCE_FRAMES)
            finals.append(await next_final(session))

    assert [result.final for result in finals] == [True, True]


async def test_leaving_the_session_closes_it(subject: Stt) -> None:
    tasks = our_tasks()
    async with subject.stt.open_session(subject.options()) as session:
        speak(session)
        await next_final(session)

    assert our_tasks() <= tasks
    if subject.disconnected is not None:
        async with asyncio.timeout(PROMPTLY_S):
            await subject.disconnected()


async def test_failures_are_provider_errors(subject: Stt) -> None:
    if not subject.failures:
        pytest.skip("nothing can make this implementation fail")
    for name, (arrange, retryable) in subject.failures.items():
        arrange()
        with pytest.raises(ProviderError) as raised:
            await hear_one(subject)
        assert raised.value.retryable is retryable, name


async def test_cancelling_the_reader_ends_it_at_once(subject: Stt) -> None:
    tasks = our_tasks()
    heard = asyncio.Event()

    async def read() -> None:
        async with subject.stt.open_session(subject.options()) as session:
            speak(session)
            await next_final(session)
            heard.set()
            await anext(aiter(session.results()))  # waits for an utterance nobody speaks

    reader = asyncio.create_task(read())
    await heard.wait()
    await cancel_promptly(reader)

    assert our_tasks() <= tasks
    if subject.disconnected is not None:
        async with asyncio.timeout(PROMPTLY_S):
            await subject.disconnected()


async def test_a_cancel_while_the_session_closes_is_kept(subject: Stt) -> None:
    closing = asyncio.Event()

    async def own() -> None:
        async with subject.stt.open_session(subject.options()):
            closing.set()
        await asyncio.Event().wait()  # reached, and stuck, only if the cancel was swallowed

    owner = asyncio.create_task(own())
    await closing.wait()  # the owner is now inside the session's exit, waiting on its workers
    await cancel_promptly(owner)
