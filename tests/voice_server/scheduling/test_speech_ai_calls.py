"""A scheduled "ai" call whose agent is speech-to-speech: the Realtime model runs on the
scheduled call's prompt snapshot, hears the callee speak first, and ends the call."""

from __future__ import annotations

from stores.calls import CallStore
from tests.voice_server.call.test_speech_calls import ulaw_tone
from tests.voice_server.fakes import frame_texts, recognise
from tests.voice_server.openai_fakes import TUNING
from tests.voice_server.realtime_conversation_fake import (
    FakeRealtimeConversation,
    Reply,
    serve_conversation,
)
from tests.voice_server.scheduling.line import (
    CALLEE,
    CALLEE_SAYS,
    OPENER,
    PROMPT,
    Db,
    callee_renders,
    calling_line,
)
from voice_server.providers.openai_registry import openai_defaults
from voice_server.settings import Settings

GOODBYE = "Great, see you Tuesday. Goodbye!"


async def test_an_ai_call_can_run_speech_to_speech_on_the_prompt_snapshot(
    database: Db, settings: Settings
) -> None:
    texts = frame_texts(await callee_renders(CALLEE.first_words, CALLEE_SAYS))
    realtime = FakeRealtimeConversation(
        lambda audio: recognise(texts, audio), Reply(GOODBYE, ulaw_tone(0.8, 440), end_call=True)
    )
    realtime.replies.append(Reply(OPENER, ulaw_tone(1.5, 330)))
    async with serve_conversation(realtime):
        openai = openai_defaults(
            "test-key",
            "http://127.0.0.1:9/v1",  # nothing goes over HTTP: the greeting is not said
            websocket_base_url=realtime.websocket_base_url,
            tuning=TUNING,
        )
        try:
            async with calling_line(database, settings, speech=openai.speech) as line:
                await database["agents"].update_one(
                    {}, {"$set": {"inferenceModel": "gpt-realtime-2"}}
                )
                await line.schedule()
                (create,) = await line.standin.wait_for_creates(1, answered=True)
                assert create.call_sid is not None
                await line.standin.finished(create.call_sid)
        finally:
            await openai.aclose()

    [session] = realtime.sessions
    assert session.config["instructions"] == PROMPT
    call = await CallStore(database).get(create.call_sid)
    assert call is not None
    assert [(e.role, e.text) for e in call.transcript] == [
        ("user", CALLEE.first_words),
        ("assistant", OPENER),
        ("user", CALLEE_SAYS),
        ("assistant", GOODBYE),
    ]
    assert call.end_reason == "agent-ended"
    assert line.llm.requests == []
