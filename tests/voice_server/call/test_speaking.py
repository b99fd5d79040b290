"""The agent speaks: the greeting, an answer to a question, and a goodbye that ends the call."""

from __future__ import annotations

import pytest

from media.twilio import OutboundMedia
from tests.voice_server.call.harness import GREETING, running_call
from tests.voice_server.call.scripted import PacedTextToSpeech, Reply, ScriptedLanguageModel
from voice_server.providers.base import ChatMessage

pytestmark = pytest.mark.looptime

QUESTION = "What are your opening hours?"
HOURS = "We open at nine and close at six."


async def test_the_greeting_is_played_and_recorded_when_its_last_mark_echoes() -> None:
    async with running_call() as call:
        await call.phone.until(lambda: bool(call.store.entries))

        (greeting,) = call.store.entries
        assert (greeting.role, greeting.text, greeting.interrupted) == ("assistant", GREETING, None)
        audio = [s for s in call.phone.sent if isinstance(s.message, OutboundMedia)]
        assert audio, "the greeting was sent as audio"
        last_echo = max(call.phone.echoed[name] for name in call.phone.marks())
        assert set(call.phone.marks()) <= set(call.phone.echoed), "every mark was echoed"
        assert call.store.appended_at[0] >= last_echo, "recorded once its last mark echoed"
        assert call.phone.played_ms >= len(GREETING) * 60


async def test_a_spoken_question_is_answered_from_the_transcript() -> None:
    llm = ScriptedLanguageModel(HOURS, token_delay_s=0.2)
    tts = PacedTextToSpeech(piece_delay_s=0.05)
    async with running_call(llm=llm, tts=tts, caller_says=[QUESTION]) as call:
        await call.phone.agent_done()
        await call.phone.say(QUESTION)
        await call.phone.until(lambda: len(call.store.entries) == 3)

    assert [(e.role, e.text) for e in call.store.entries] == [
        ("assistant", GREETING),
        ("user", QUESTION),
        ("assistant", HOURS),
    ]
    (request,) = llm.requests
    assert list(request.messages) == [
        ChatMessage("system", call.agent.systemPrompt),
        ChatMessage("assistant", GREETING),
        ChatMessage("user", QUESTION),
    ]
    answer = call.store.entries[2]
    assert answer.metrics is not None
    # Each figure counts from the caller's end of speech; on the loop's clock, each wait
    # between them is exactly what the fakes were told to take.
    final_ms = answer.metrics["stt_final_ms"]
    assert final_ms == answer.metrics["endpointing_ms"]  # this recogniser ends on our endpoint
    assert answer.metrics["llm_first_token_ms"] == final_ms + 200
    # Speech starts once the first sentence is complete (here, the whole answer) and spoken.
    sentence_written_ms = len(HOURS.split()) * 200
    assert answer.metrics["tts_first_byte_ms"] == final_ms + sentence_written_ms + 50
    assert answer.metrics["first_audio_ms"] == answer.metrics["tts_first_byte_ms"]
    assert not answer.interrupted


async def test_the_end_call_tool_ends_the_call_after_the_goodbyes_last_mark() -> None:
    goodbye = "Goodbye, and thank you for calling!"
    llm = ScriptedLanguageModel(Reply(goodbye, end_call=True))
    async with running_call(llm=llm, caller_says=["Thank you, goodbye."]) as call:
        await call.phone.agent_done()
        await call.phone.say("Thank you, goodbye.")
        reason = await call.ended()
        ended_at = call.phone.now

    assert reason == "agent-ended"
    assert llm.requests[0].tools[0].name == "end_call"
    reply = call.store.entries[-1]
    assert (reply.text, reply.interrupted) == (goodbye, None)
    assert set(call.phone.marks()) <= set(call.phone.echoed)
    assert ended_at >= max(call.phone.echoed.values()), "the caller heard the whole goodbye"
    assert call.phone.clears() == []


async def test_a_pause_mid_sentence_does_not_end_the_turn() -> None:
    start, end = "I would like to book", "a table for two"
    llm = ScriptedLanguageModel("For what time?")
    async with running_call(llm=llm, caller_says=[start, end]) as call:
        await call.phone.agent_done()
        await call.phone.say(start)
        await call.phone.wait(0.3)  # shorter than the agent's end-of-turn silence (550 ms)
        await call.phone.say(end)
        await call.phone.until(lambda: len(call.store.entries) == 3)

    assert call.said("user") == [f"{start} {end}"]
    assert len(llm.requests) == 1
