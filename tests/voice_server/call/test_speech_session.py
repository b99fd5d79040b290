"""A speech-to-speech call on the loop's clock: the real `SpeechCallSession` against the fake
phone line and a scripted model, for what whole calls cannot reach in milliseconds (the time
limit, the server's shutdown, what the model is told, figures to the millisecond)."""

from __future__ import annotations

import asyncio

import pytest

from stores.turn_taking import TurnTaking
from tests.voice_server.call.harness import GREETING, SHUTDOWN_TEXT, running_call
from tests.voice_server.call.scripted_speech import ScriptedSpeech
from voice_server.call.context import CALLEE_SILENT, Opening
from voice_server.providers.base import (
    AgentAudio,
    AgentText,
    CallerSpeech,
    CallerText,
    ChatMessage,
    ResponseDone,
)

pytestmark = pytest.mark.looptime

ANSWER = "We open at nine."
SECOND_OF_ULAW = bytes(range(1, 201)) * 40  # 8 000 bytes of μ-law: one second


async def test_the_model_is_told_what_the_caller_heard_of_the_greeting() -> None:
    speech = ScriptedSpeech()
    async with running_call(speech_to_speech=speech) as call:
        await call.phone.agent_done()
        await call.phone.until(lambda: bool(speech.sessions[0].remembered))

    assert speech.sessions[0].remembered == [ChatMessage("assistant", GREETING)]
    assert speech.options[0].history == ()


async def test_what_the_caller_says_while_the_session_opens_reaches_the_model() -> None:
    opens = asyncio.Event()
    speech = ScriptedSpeech(opens)
    async with running_call(speech_to_speech=speech, caller_says=["Hello?"]) as call:
        phone = call.phone
        await phone.say("Hello?")  # over the greeting, before the model's session is open
        sent_ms = phone.now * 1000
        opens.set()
        await phone.until(lambda: bool(speech.sessions))
        received_ms = speech.sessions[0].audio_in / 8  # 8 bytes of μ-law a millisecond

    assert received_ms >= sent_ms - 40  # all of it, give or take the frame on its way


async def test_a_caller_cutting_in_on_the_greeting_stops_it_and_any_answer_on_its_way() -> None:
    speech = ScriptedSpeech()
    async with running_call(speech_to_speech=speech) as call:
        phone = call.phone
        await phone.agent_playing_for(0.7)
        speech.emit(CallerSpeech(started=True, audio_ms=600))
        await phone.until(lambda: bool(phone.clears()))
        await phone.wait(0.5)
        heard_ms = phone.played_ms

    [greeting] = call.store.entries
    assert greeting.interrupted
    assert GREETING.startswith(greeting.text)
    assert 0 < len(greeting.text) < len(GREETING)
    assert 600 <= heard_ms <= 800
    assert speech.sessions[0].cuts == [(None, 0)], "a response on its way is cancelled"
    assert speech.sessions[0].remembered == [ChatMessage("assistant", greeting.text)]


async def test_an_answer_is_recorded_with_its_figures_once_heard() -> None:
    speech = ScriptedSpeech()
    async with running_call(speech_to_speech=speech) as call:
        phone = call.phone
        await phone.agent_done()
        speech.emit(CallerSpeech(started=True, audio_ms=2000), CallerSpeech(False, 3000))
        await phone.wait(0.3)  # the model's first audio comes 300 ms after the turn ended
        speech.emit(
            CallerText("When do you open?"),
            AgentText("item_1", ANSWER),
            AgentAudio("item_1", SECOND_OF_ULAW[:4000]),
            AgentAudio("item_1", SECOND_OF_ULAW[4000:]),
            ResponseDone("completed", input_tokens=10, output_tokens=20),
        )
        await phone.agent_done()
        await phone.until(lambda: len(call.store.entries) == 3)

    user, answer = call.store.entries[1:]
    assert (user.role, user.text) == ("user", "When do you open?")
    assert (answer.role, answer.text, answer.interrupted) == ("assistant", ANSWER, None)
    metrics = answer.metrics
    assert metrics is not None
    assert metrics["audio_in_s"] == 1.0
    assert metrics["audio_out_s"] == 1.0
    assert (metrics["prompt_tokens"], metrics["completion_tokens"]) == (10, 20)
    assert metrics["model_first_audio_ms"] == pytest.approx(metrics["endpointing_ms"] + 300, abs=1)
    assert metrics["first_audio_ms"] == metrics["model_first_audio_ms"]


async def test_the_time_limit_ends_the_call_with_its_goodbye() -> None:
    speech = ScriptedSpeech()
    async with running_call(speech_to_speech=speech, maxCallSeconds=10) as call:
        reason = await call.ended(timeout_s=20)

    assert reason == "max-duration"
    assert call.said("assistant")[-1] == TurnTaking().maxDurationGoodbyeText


async def test_a_server_shutdown_is_said_goodbye_and_ends_the_call() -> None:
    speech = ScriptedSpeech()
    async with running_call(speech_to_speech=speech) as call:
        await call.phone.agent_done()
        call.call.shut_down(goodbye=True)
        reason = await call.ended(timeout_s=20)

    assert reason == "server-shutdown"
    assert call.said("assistant")[-1] == SHUTDOWN_TEXT


async def test_a_silent_caller_is_asked_again_then_said_goodbye_to() -> None:
    speech = ScriptedSpeech()
    async with running_call(
        speech_to_speech=speech, silenceRepromptMs=2000, maxReprompts=1
    ) as call:
        reason = await call.ended(timeout_s=20)

    turns = TurnTaking()
    assert reason == "caller-silent"
    assert call.said("assistant") == [GREETING, turns.repromptText, turns.silenceGoodbyeText]
    told = [message.content for message in speech.sessions[0].remembered]
    assert told[:2] == [GREETING, turns.repromptText]
    asked_at = call.store.appended_at
    assert asked_at[1] - asked_at[0] >= 2.0, "asked again after two seconds of silence"


async def test_a_caller_answering_the_model_is_not_asked_again() -> None:
    speech = ScriptedSpeech()
    async with running_call(speech_to_speech=speech, silenceRepromptMs=2000) as call:
        phone = call.phone
        await phone.agent_done()
        await phone.wait(1.5)
        speech.emit(CallerSpeech(started=True, audio_ms=1000))
        await phone.wait(1.5)
        speech.emit(CallerSpeech(started=False, audio_ms=2500))
        await phone.wait(1.0)  # the model answers within the silence allowed
        speech.emit(
            AgentText("item_1", ANSWER),
            AgentAudio("item_1", SECOND_OF_ULAW),
            ResponseDone("completed"),
        )
        await phone.agent_done()
        await phone.wait(1.0)

    assert call.said("assistant") == [GREETING, ANSWER]


async def test_on_a_call_we_placed_the_model_speaks_first_when_the_callee_stays_silent() -> None:
    speech = ScriptedSpeech()
    opening = Opening(greet=False, hello_wait_s=2.0)
    async with running_call(speech_to_speech=speech, opening=opening) as call:
        await call.phone.until(lambda: bool(speech.sessions and speech.sessions[0].asked))
        asked_at = call.phone.now

    [session] = speech.sessions
    assert session.remembered == [ChatMessage("user", CALLEE_SILENT)]
    assert session.asked == [None], "the agent's own instructions stay in force"
    assert asked_at == pytest.approx(2.0, abs=0.1)
    assert call.said("assistant") == []
