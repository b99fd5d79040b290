"""When the caller's turn ends depends on how their words end: a pause after words that cannot
end a sentence is waited out, a question is answered as soon as the recogniser is sure."""

from __future__ import annotations

import pytest

from media.twilio import OutboundMedia
from tests.voice_server.call.harness import Call, running_call, speech
from tests.voice_server.call.scripted import ScriptedLanguageModel
from tests.voice_server.fakes import EchoingSpeechToText

pytestmark = pytest.mark.looptime

REALTIME_FINAL_MS = 480  # OpenAI's Realtime endpoints before our 550 ms of silence
REPLY = "Thank you."
CLOSING = "We close at six."


def first_audio_after(call: Call, at: float) -> float:
    return min(s.at for s in call.phone.sent if s.at >= at and isinstance(s.message, OutboundMedia))


@pytest.mark.parametrize(
    ("first", "rest"),
    [
        ("I would like to book", "a table for two."),
        ("I need a table for four, and", "a high chair, please."),
    ],
)
async def test_a_700_ms_pause_mid_sentence_is_waited_out(first: str, rest: str) -> None:
    stt = EchoingSpeechToText(await speech([first, rest]), final_after_ms=REALTIME_FINAL_MS)
    llm = ScriptedLanguageModel(REPLY, REPLY)
    async with running_call(llm=llm, stt=stt, caller_says=[first, rest]) as call:
        phone = call.phone
        await phone.agent_done()
        paused_at = phone.now
        await phone.say(first)
        await phone.wait(0.7)
        await phone.say(rest)
        finished_at = phone.now
        await phone.agent_done()
        await phone.wait(1.0)

    assert first_audio_after(call, paused_at) > finished_at, "no answer before the sentence ended"
    assert call.said("user") == [first, rest]
    assert call.said("assistant")[1:] == [REPLY], "one answer, to all of it"


@pytest.mark.parametrize(
    ("said", "earliest_s", "latest_s"),
    [
        ("Tell me about your menu.", 0.55, 0.75),  # our endpointing's 550 ms, as before
        ("What are your opening hours?", 0.48, 0.55),  # a question: the recogniser's final
        ("I would like to book", 1.5, 1.8),  # unfinished: 1.5 s to go on, then answered
    ],
)
async def test_how_long_the_agent_waits_depends_on_how_the_words_end(
    said: str, earliest_s: float, latest_s: float
) -> None:
    stt = EchoingSpeechToText(await speech([said]), final_after_ms=REALTIME_FINAL_MS)
    async with running_call(
        llm=ScriptedLanguageModel(REPLY), stt=stt, caller_says=[said], unfinishedEndSilenceMs=1500
    ) as call:
        phone = call.phone
        await phone.agent_done()
        await phone.say(said)
        stopped_at = phone.now
        await phone.agent_done()

    waited = first_audio_after(call, stopped_at) - stopped_at
    assert earliest_s <= waited < latest_s
    assert call.said("assistant")[1:] == [REPLY]


async def test_speech_right_after_an_early_answer_interrupts_it() -> None:
    """The question's answer starts before our endpointing would have ended the turn; the
    caller goes on talking at once, which starts a new turn and stops the answer."""
    question, more = "What are your opening hours?", "And on Sundays, please tell me."
    stt = EchoingSpeechToText(await speech([question, more]), final_after_ms=REALTIME_FINAL_MS)
    llm = ScriptedLanguageModel("We open at nine on weekdays and at ten on weekends.", CLOSING)
    async with running_call(llm=llm, stt=stt, caller_says=[question, more]) as call:
        phone = call.phone
        await phone.agent_done()
        await phone.say(question)
        await phone.wait(0.52)  # the answer has started; our endpointing's 550 ms are not over
        more_at = phone.now
        await phone.say(more)
        await phone.agent_done()
        await phone.wait(1.0)

    (clear,) = phone.clears()
    assert clear.at - more_at < 0.3, "the caller's words stopped the answer at once"
    assert call.said("user") == [question, more]
    assert call.said("assistant")[-1] == CLOSING
