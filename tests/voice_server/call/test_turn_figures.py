"""A turn's figures count from the caller's real end of speech: the end of the audio they sent,
not WebRTC's last voiced frame (about 100 ms of hangover later)."""

from __future__ import annotations

import pytest

from media.twilio import OutboundMedia
from tests.voice_server.call.harness import running_call
from tests.voice_server.call.scripted import PacedTextToSpeech, ScriptedLanguageModel

pytestmark = pytest.mark.looptime

QUESTION = "What are your opening hours?"
HOURS = "We open at nine and close at six."


async def test_first_audio_is_timed_from_the_end_of_the_callers_speech() -> None:
    llm = ScriptedLanguageModel(HOURS, token_delay_s=0.05)
    tts = PacedTextToSpeech(piece_delay_s=0.05)
    async with running_call(llm=llm, tts=tts, caller_says=[QUESTION]) as call:
        await call.phone.agent_done()
        await call.phone.say(QUESTION)
        spoken_end = call.phone.now  # the tick that carried the last frame of the speech
        await call.phone.until(lambda: len(call.store.entries) == 3)

    first_audio = next(
        sent.at
        for sent in call.phone.sent
        if sent.at > spoken_end and isinstance(sent.message, OutboundMedia)
    )
    heard_ms = (first_audio - spoken_end) * 1000
    question, answer = call.store.entries[1:]
    assert answer.metrics is not None
    assert question.metrics is not None
    # Within a frame of what the caller waits (the VAD's end was 100–120 ms later).
    assert answer.metrics["first_audio_ms"] == pytest.approx(heard_ms, abs=20.0)
    endpointing = answer.metrics["endpointing_ms"]
    assert endpointing >= call.agent.turnTaking.endSilenceMs + 60, "hangover included"
    figures = [answer.metrics[f"{name}_ms"] for name in ("stt_final", "llm_first_token")]
    assert endpointing <= figures[0] <= figures[1]
    assert figures[1] <= answer.metrics["tts_first_byte_ms"] <= answer.metrics["first_audio_ms"]
    assert question.metrics["stt_final_ms"] == figures[0]
