"""The offline providers against real espeak-ng and PocketSphinx, and the stand-in model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import numpy as np
import pytest

from voice_server.call.speech_audio import render_ulaw
from voice_server.providers.base import (
    ChatMessage,
    LlmRequest,
    LlmUsage,
    ProviderError,
    SttOptions,
    SttResult,
    SttSession,
    TtsRequest,
)
from voice_server.providers.local import (
    EspeakTextToSpeech,
    PocketSphinxSpeechToText,
    StandInLanguageModel,
)

SENTENCE = "Hello, I would like to book a table for two people tomorrow evening."


def speech(text: str, voice: str = "en-us") -> TtsRequest:
    return TtsRequest(model="espeak-ng", voice=voice, text=text)


async def synthesise(request: TtsRequest) -> tuple[set[int], bytes]:
    rates: set[int] = set()
    pcm = b""
    async for rate, piece in EspeakTextToSpeech().stream(request):
        rates.add(rate)
        pcm += piece
    return rates, pcm


async def test_espeak_yields_22050_hz_pcm_of_the_expected_duration() -> None:
    rates, pcm = await synthesise(speech(SENTENCE))

    assert rates == {22_050}
    assert len(pcm) % 2 == 0
    # 13 words at 165 words a minute is about 4.7 s; espeak adds pauses at commas and the end.
    seconds = len(pcm) / 2 / 22_050
    assert 2.5 < seconds < 8.0


async def test_espeak_longer_text_takes_longer() -> None:
    _, short = await synthesise(speech("Hello."))
    _, long = await synthesise(speech(SENTENCE))
    assert len(long) > 2 * len(short)


async def test_espeak_audio_is_not_silent() -> None:
    _, pcm = await synthesise(speech("Good morning."))
    assert int(np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.int32)).max()) > 1000


@pytest.mark.parametrize("voice", ["en us", "en-us; rm -rf /", "", "x" * 41, "en/us"])
async def test_espeak_invalid_voice_name_raises_provider_error(voice: str) -> None:
    with pytest.raises(ProviderError, match="invalid voice name") as raised:
        await synthesise(speech("Hello.", voice=voice))
    assert raised.value.provider == "espeak-ng"


async def test_espeak_missing_executable_raises_provider_error() -> None:
    tts = EspeakTextToSpeech(executable="/nonexistent/espeak-ng")
    with pytest.raises(ProviderError, match="cannot start"):
        async for _ in tts.stream(speech("Hello.")):
            pass


async def stand_in_answer(*messages: ChatMessage) -> tuple[str, LlmUsage]:
    usage = LlmUsage()
    request = LlmRequest(model="stand-in", messages=messages)
    pieces = [piece async for piece in StandInLanguageModel().stream(request, usage)]
    return "".join(pieces), usage


async def test_stand_in_repeats_the_last_user_turn_with_its_number() -> None:
    answer, usage = await stand_in_answer(
        ChatMessage("system", "You are a helpful receptionist."),
        ChatMessage("assistant", "Hello! How can I help?"),
        ChatMessage("user", "I want a table"),
        ChatMessage("assistant", "For how many?"),
        ChatMessage("user", "  for two people  "),
    )

    assert answer == "Turn 2. I heard you say: for two people. Is there anything else?"
    assert usage.prompt_tokens == 5 + 5 + 4 + 3 + 3
    assert usage.completion_tokens == 13
    assert usage.extra == {}


async def test_stand_in_streams_word_by_word() -> None:
    usage = LlmUsage()
    request = LlmRequest(model="stand-in", messages=[ChatMessage("user", "hi")])
    pieces = [piece async for piece in StandInLanguageModel().stream(request, usage)]
    assert "".join(pieces) == "Turn 1. I heard you say: hi. Is there anything else?"
    assert len(pieces) == 11
    assert pieces[0] == "Turn"
    assert all(piece[0] == " " and " " not in piece[1:] for piece in pieces[1:])


async def test_stand_in_asks_again_when_nothing_was_heard() -> None:
    answer, usage = await stand_in_answer(
        ChatMessage("system", "Be brief."), ChatMessage("user", "   ")
    )
    assert answer == "Sorry, I did not catch that. Could you say it again?"
    assert usage.prompt_tokens == 2
    assert usage.completion_tokens == 11


async def next_final(session: SttSession) -> SttResult:
    untyped = session.results()
    assert isinstance(untyped, AsyncGenerator)
    results: AsyncGenerator[SttResult, None] = untyped
    async with asyncio.timeout(60):
        async for result in results:
            if result.final:
                await results.aclose()
                return result
    raise AssertionError("results ended without a final result")


def frames(ulaw: bytes) -> list[bytes]:
    return [ulaw[i : i + 160] for i in range(0, len(ulaw), 160)]


async def heard(session: SttSession, ulaw: bytes) -> SttResult:
    """The final for one utterance of `ulaw`, sent as the call sends it: 200 ms of silence
    before the VAD's onset, then the speech frame by frame, then its end."""
    for _ in range(10):
        session.push_audio(b"\xff" * 160, speech=False)
    session.speech_started()
    for frame in frames(ulaw):
        session.push_audio(frame, speech=True)
    session.speech_ended()
    return await next_final(session)


async def test_pocketsphinx_recognises_words_in_espeak_speech() -> None:
    ulaw = await render_ulaw(EspeakTextToSpeech(), speech(SENTENCE))

    async with PocketSphinxSpeechToText().open_session(SttOptions("pocketsphinx")) as session:
        result = await heard(session, ulaw)

    assert result.final
    assert result.text.strip()


async def test_pocketsphinx_silence_gives_an_empty_final() -> None:
    async with PocketSphinxSpeechToText().open_session(SttOptions("pocketsphinx")) as session:
        session.speech_started()
        for _ in range(100):
            session.push_audio(b"\xff" * 160, speech=False)
        session.speech_ended()

        result = await next_final(session)

    assert result == SttResult(text="", final=True)


async def test_pocketsphinx_speech_ended_without_speech_gives_an_empty_final() -> None:
    async with PocketSphinxSpeechToText().open_session(SttOptions("pocketsphinx")) as session:
        session.speech_ended()
        result = await next_final(session)

    assert result == SttResult(text="", final=True)
