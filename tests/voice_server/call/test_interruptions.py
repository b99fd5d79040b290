"""Whether an interruption was meant is judged on its own speech, and a response cut before any
of it was heard is given again: the caller's words are never dropped, a question never left
unanswered."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from tests.voice_server.call.harness import GREETING, running_call, speech
from tests.voice_server.call.scripted import PacedTextToSpeech, ScriptedLanguageModel
from tests.voice_server.fakes import EchoingSpeechToText
from voice_server.call.phrases import FALLBACK_TEXT

pytestmark = pytest.mark.looptime

SENTENCE = "Hello, I would like to book an appointment for next Tuesday please."
MENU = "Tell me about your menu."
MENU_ANSWER = "Our menu has three parts. Starters and soups come first. Then mains."
TUESDAY = "Tuesday at ten is free."
BACKCHANNEL = "mm-hm"
REALTIME_FINAL_MS = 480  # OpenAI's Realtime endpoints before our 550 ms of silence


async def test_a_sentence_over_the_greeting_is_a_turn_and_is_answered() -> None:
    stt = EchoingSpeechToText(await speech([SENTENCE]), final_after_ms=REALTIME_FINAL_MS)
    async with running_call(
        llm=ScriptedLanguageModel(TUESDAY), stt=stt, caller_says=[SENTENCE]
    ) as call:
        phone = call.phone
        await phone.agent_playing_for(0.5)
        await phone.say(SENTENCE)
        await phone.until(lambda: TUESDAY in call.said("assistant"), timeout_s=10)

    assert call.said("user") == [SENTENCE]
    greeting, asked, answer = call.store.entries
    assert (greeting.role, greeting.interrupted) == ("assistant", True)
    assert GREETING.startswith(greeting.text), "the greeting is kept as far as it was heard"
    assert greeting.text != GREETING
    assert (asked.role, answer.role, answer.text) == ("user", "assistant", TUESDAY)


async def test_a_backchannel_right_after_a_question_does_not_lose_the_answer() -> None:
    # The model is slow enough that no audio of the answer is out when the caller says "mm-hm".
    llm = ScriptedLanguageModel(MENU_ANSWER, MENU_ANSWER, token_delay_s=0.1)
    with capture_logs() as logs:
        async with running_call(
            llm=llm, caller_says=[MENU, BACKCHANNEL], silenceRepromptMs=60_000
        ) as call:
            phone = call.phone
            await phone.agent_done()
            await phone.say(MENU)
            await phone.until(lambda: call.said("user") == [MENU])
            await phone.say(BACKCHANNEL)
            await phone.until(lambda: MENU_ANSWER in call.said("assistant"), timeout_s=10)
            await phone.wait(6.0)  # past the watchdog's 5 s

    assert call.said("user") == [MENU]
    assert call.said("assistant") == [GREETING, MENU_ANSWER], "answered once, whole"
    assert FALLBACK_TEXT not in call.said("assistant")
    assert not [log for log in logs if log["log_level"] == "error"]


async def test_a_backchannel_before_the_greeting_is_ready_does_not_lose_it() -> None:
    # The greeting was not cached: its render takes 1.8 s, and the caller says "mm-hm" during it.
    tts = PacedTextToSpeech(piece_delay_s=0.1)
    with capture_logs() as logs:
        async with running_call(
            tts=tts, caller_says=[BACKCHANNEL], silenceRepromptMs=60_000
        ) as call:
            phone = call.phone
            await phone.wait(0.5)
            await phone.say(BACKCHANNEL)
            await phone.agent_done()
            await phone.wait(6.0)  # past the watchdog's 5 s

    assert call.said("assistant") == [GREETING]
    assert not any(entry.interrupted for entry in call.store.entries)
    assert not [log for log in logs if log["log_level"] == "error"]
