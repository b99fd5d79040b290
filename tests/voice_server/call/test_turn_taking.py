"""The scripted conversation set, played by the caller simulator against the real server.

Speech-to-text is `EchoingSpeechToText` (it knows what the simulator says), so each outcome is
exact; the VAD, endpointing, barge-in, marks and transcript are the real ones. Only the cases
that hang on real speech and real timing run here, in real time; timers (re-prompts, keys, the
time limit, the watchdog, `end_call`, barge-in turned off) are pinned in virtual time by the unit
tests beside this file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from stores.calls import Call, CallStore
from tests.voice_server.fakes import EchoingSpeechToText
from voice_server.providers import local
from voice_server.providers.base import LanguageModel
from voice_server.providers.registry import ProviderRegistry
from voice_server.security.secret_key import secret_box
from voice_server.seed import DEMO_STT_MODEL, seed_demo
from voice_server.serving import serve_in_background
from voice_server.settings import Settings
from voice_server.simulation.caller_script import render_steps
from voice_server.simulation.scripted_calls import CONVERSATIONS, Conversation
from voice_server.simulation.simulator import CallResult, Line, place_call

Db = AsyncDatabase[dict[str, Any]]


@asynccontextmanager
async def calling(
    database: Db, settings: Settings, conversation: Conversation, llm: LanguageModel | None = None
) -> AsyncIterator[Line]:
    line = await seed_demo(database, secret_box(settings))
    if conversation.turn_taking:
        await database["agents"].update_one({}, {"$set": {"turnTaking": conversation.turn_taking}})
    renders = await render_steps(conversation.script)
    texts = {step.text: audio for step, audio in renders.items() if hasattr(step, "text")}
    providers = ProviderRegistry(
        stt={DEMO_STT_MODEL: EchoingSpeechToText(texts)},
        llm={local.LLM_MODEL: llm or local.StandInLanguageModel()},
        tts={local.TTS_MODEL: local.EspeakTextToSpeech()},
    )
    async with serve_in_background(settings, database, providers) as base_url:
        yield Line(base_url, line.auth_token, "+15550100199", line.number)


async def play(
    database: Db, settings: Settings, name: str, llm: LanguageModel | None = None
) -> tuple[CallResult, Call]:
    conversation = CONVERSATIONS[name]
    async with calling(database, settings, conversation, llm) as line:
        result = await place_call(line, conversation.script)
    call = await CallStore(database).get(result.call_sid)
    assert call is not None
    return result, call


def said(call: Call, role: str) -> list[str]:
    return [entry.text for entry in call.transcript if entry.role == role]


def answer(turn: int, heard: str) -> str:
    return f"Turn {turn}. I heard you say: {heard}. Is there anything else?"


async def test_a_pause_mid_sentence_does_not_end_the_turn(database: Db, settings: Settings) -> None:
    _, call = await play(database, settings, "pause-mid-sentence")

    assert said(call, "user") == ["I would like to book a table for two"]
    assert said(call, "assistant")[1:] == [answer(1, "I would like to book a table for two")]


async def test_talking_over_the_agent_stops_it_and_keeps_what_was_heard(
    database: Db, settings: Settings
) -> None:
    result, call = await play(database, settings, "talk-over-the-agent")

    assert result.clears >= 1
    assert result.interruptions[0].clear_after_ms is not None
    first, interrupted_answer, second = (
        said(call, "user")[0],
        call.transcript[2],
        call.transcript[3],
    )
    full = answer(1, first)
    assert interrupted_answer.role == "assistant"
    assert interrupted_answer.interrupted is True
    assert interrupted_answer.text, "the caller heard the start of the answer"
    assert full.startswith(interrupted_answer.text)
    assert len(interrupted_answer.text) < len(full)
    assert second.text == "Stop. What time do you close?"
    assert call.transcript[4].text == answer(2, second.text)


async def test_a_sentence_over_the_greeting_is_a_turn_and_is_answered(
    database: Db, settings: Settings
) -> None:
    _, call = await play(database, settings, "speaks-over-the-greeting")

    booking = "Hello, I would like to book an appointment for next Tuesday please."
    assert said(call, "user") == [booking]
    *greeting, asked, reply = call.transcript
    assert all(entry.interrupted for entry in greeting), "the greeting was cut, as heard"
    assert (asked.text, reply.text) == (booking, answer(1, booking))


async def test_a_cough_right_after_a_question_does_not_lose_the_answer(
    database: Db, settings: Settings
) -> None:
    _, call = await play(database, settings, "cough-right-after-a-question")

    assert said(call, "user") == ["What are your opening hours?"]
    assert said(call, "assistant")[1:] == [answer(1, "What are your opening hours?")]


@pytest.mark.parametrize(
    "conversation", ["cough-while-agent-speaks", "backchannel-while-agent-speaks"]
)
async def test_a_cough_or_a_backchannel_does_not_cut_the_agent_off(
    database: Db, settings: Settings, conversation: str
) -> None:
    _, call = await play(database, settings, conversation)

    assert said(call, "user") == ["Tell me about your menu."]
    reply = call.transcript[-1]
    assert reply.text == answer(1, "Tell me about your menu.")
    assert not reply.interrupted


async def test_keys_then_speech_are_answered_once_the_caller_has_finished(
    database: Db, settings: Settings
) -> None:
    _, call = await play(database, settings, "keys-then-speech")

    turn = [(entry.role, entry.text) for entry in call.transcript[1:]]
    assert turn == [
        ("user", "42"),
        ("user", "What are your opening hours?"),
        ("assistant", answer(2, "What are your opening hours?")),
    ]


async def test_hanging_up_mid_answer_keeps_what_was_heard(database: Db, settings: Settings) -> None:
    _, call = await play(database, settings, "hangs-up-mid-answer")

    assert call.end_reason == "caller-hung-up"
    reply = call.transcript[-1]
    assert reply.role == "assistant"
    assert reply.interrupted is True
    assert answer(1, "What are your opening hours?").startswith(reply.text)
