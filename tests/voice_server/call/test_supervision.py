"""Deadlines of a call: silence re-prompts, key sequences, the maximum duration, the watchdog.

The agent's defaults are kept (8 s re-prompts, 1.5 s between keys, the 5 s watchdog): the
loop's clock is virtual, so each test takes milliseconds whatever the timers say.
"""

from __future__ import annotations

import pytest

from media.twilio import OutboundMedia
from stores.turn_taking import TurnTaking
from tests.voice_server.call.harness import GREETING, running_call
from tests.voice_server.call.scripted import ScriptedLanguageModel, speech_ms
from tests.voice_server.fakes import HangingLanguageModel
from voice_server.call.phrases import FALLBACK_TEXT
from voice_server.providers.base import ChatMessage

pytestmark = pytest.mark.looptime

DEFAULTS = TurnTaking()
QUESTION = "What are your opening hours?"
REPLY = "Thank you."
TICK_SLACK_S = 0.15  # the supervisor's resolution (0.1 s) and the line's 20 ms ticks
EPSILON_S = 1e-6  # sums of 20 ms ticks in floating point


async def test_silence_is_reprompted_then_the_agent_says_goodbye_and_ends_the_call() -> None:
    async with running_call() as call:
        reason = await call.ended()
        ended_at = call.phone.now

    assert reason == "caller-silent"
    reprompt, goodbye = DEFAULTS.repromptText, DEFAULTS.silenceGoodbyeText
    assert call.said("assistant") == [GREETING, reprompt, reprompt, goodbye]
    # Each prompt starts 8 s after the previous one finished playing (and is recorded once
    # it has played in full).
    recorded = call.store.appended_at
    texts = call.said("assistant")
    for before, after, text in zip(recorded[:-1], recorded[1:], texts[1:], strict=True):
        silence = after - before - speech_ms(text) / 1000
        assert DEFAULTS.silenceRepromptMs / 1000 - EPSILON_S <= silence < 8 + TICK_SLACK_S
    assert ended_at >= max(call.phone.echoed.values()), "the goodbye was heard to its end"


async def keyed_in(keys: str) -> float:
    """Press `keys` after the greeting; how long after the last key the sequence was stored.
    Checks that it was stored as keys, and that the model was told and answered."""
    llm = ScriptedLanguageModel(REPLY)
    async with running_call(llm=llm) as call:
        await call.phone.agent_done()
        last_key_at = await call.phone.press(keys)
        await call.phone.until(lambda: call.said("assistant")[-1:] == [REPLY])

    digits = keys.rstrip("#")
    (keyed,) = [(i, e) for i, e in enumerate(call.store.entries) if e.role == "user"]
    index, entry = keyed
    assert (entry.text, entry.source) == (digits, "dtmf")
    (request,) = llm.requests
    spaced = " ".join(digits)
    assert request.messages[-1] == ChatMessage("user", f"(The caller pressed the keys: {spaced})")
    return call.store.appended_at[index] - last_key_at


async def test_a_key_sequence_ended_by_hash_is_recorded_and_reaches_the_model() -> None:
    assert await keyed_in("42#") < 0.05, "'#' ends the sequence at once"


async def test_a_key_sequence_ends_after_the_inter_digit_pause() -> None:
    pause = DEFAULTS.dtmfInterDigitMs / 1000
    assert pause - EPSILON_S <= await keyed_in("73") < pause + TICK_SLACK_S


async def test_the_maximum_duration_ends_the_call_politely() -> None:
    async with running_call(maxCallSeconds=10, silenceRepromptMs=60_000) as call:
        started = call.phone.now
        reason = await call.ended()
        ended_at = call.phone.now

    assert reason == "max-duration"
    goodbye = call.store.entries[-1]
    assert (goodbye.text, goodbye.interrupted) == (DEFAULTS.maxDurationGoodbyeText, None)
    said_at = next(s.at for s in call.phone.sent if s.at >= started + 10)
    assert 10 - EPSILON_S <= said_at - started < 10 + TICK_SLACK_S
    assert ended_at >= max(call.phone.echoed.values()), "the goodbye was heard to its end"


async def test_a_hanging_model_is_noticed_and_the_caller_hears_the_fallback() -> None:
    llm = HangingLanguageModel()
    async with running_call(llm=llm, caller_says=[QUESTION]) as call:
        await call.phone.agent_done()
        await call.phone.say(QUESTION)
        await call.phone.until(lambda: len(call.store.entries) == 3)

    assert llm.cancelled.is_set(), "the hanging request was closed"
    asked_at = call.store.appended_at[1]
    first_audio = next(
        s.at for s in call.phone.sent if s.at > asked_at and isinstance(s.message, OutboundMedia)
    )
    assert 5 - EPSILON_S <= first_audio - asked_at < 5 + TICK_SLACK_S, "noticed by the 5 s watchdog"
    fallback = call.store.entries[2]
    assert (fallback.role, fallback.text) == ("assistant", FALLBACK_TEXT)
    assert fallback.error == "the response produced nothing in time"
