"""The speaker's operations and each utterance's life, against fake providers and a fake Twilio
that echoes marks only when the test says so (no real time passes)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Sequence

import pytest

from stores.calls import TranscriptEntry
from tests.voice_server.fakes import ToneTextToSpeech
from voice_server.call.latency import TurnTimer
from voice_server.call.outbound import Outbound
from voice_server.call.phrases import FALLBACK_TEXT
from voice_server.call.rendering import Renderer
from voice_server.call.speaker import END_CALL, Outcome, Speaker
from voice_server.providers.base import (
    ChatMessage,
    LanguageModel,
    LlmRequest,
    LlmUsage,
    ProviderError,
    ToolCall,
)

REQUEST = LlmRequest(model="fake", messages=[ChatMessage("user", "Hi")], tools=(END_CALL,))


class ScriptedLanguageModel:
    """Writes the given tokens at once; then calls the given tools, or fails."""

    def __init__(self, tokens: Sequence[str], *, tools: Sequence[str] = (), fail: bool = False):
        self._tokens, self._tools, self._fail = tokens, tools, fail

    async def stream(self, request: LlmRequest, usage: LlmUsage) -> AsyncGenerator[str, None]:
        for token in self._tokens:
            yield token
        if self._fail:
            raise ProviderError("down", provider="fake-llm")
        usage.tool_calls.extend(ToolCall(name=name, arguments="{}") for name in self._tools)


class Twilio:
    """Collects what the speaker sends; `play()` echoes marks as Twilio would after playing."""

    def __init__(self) -> None:
        self.sent: list[dict[str, object]] = []
        self.entries: list[TranscriptEntry] = []
        self.marked = asyncio.Event()

    async def send_text(self, text: str) -> None:
        self.sent.append(json.loads(text))
        if self.sent[-1]["event"] == "mark":
            self.marked.set()

    def add(self, entry: TranscriptEntry) -> None:
        self.entries.append(entry)

    def marks(self) -> list[str]:
        return [str(m["mark"]["name"]) for m in self.sent if m["event"] == "mark"]  # type: ignore[index]

    def play(self, speaker: Speaker, count: int | None = None) -> None:
        for name in self.marks()[:count]:
            speaker.on_mark(name)


async def make_speaker(
    twilio: Twilio, llm: LanguageModel | None = None, fallback: bytes | None = None
) -> tuple[Speaker, list[ChatMessage]]:
    outbound = Outbound(twilio.send_text, "MZ1")
    renderer = Renderer(outbound, ToneTextToSpeech(), model="fake", voice="fake")
    history: list[ChatMessage] = []
    rendered: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
    rendered.set_result(fallback)
    speaker = Speaker(
        outbound,
        renderer,
        llm=llm or ScriptedLanguageModel([]),
        transcript=twilio,
        history=history,
        fallback_audio=rendered,
    )
    return speaker, history


async def test_an_utterance_is_recorded_once_all_its_marks_played() -> None:
    twilio = Twilio()
    speaker, history = await make_speaker(twilio)
    said = await speaker.say("One. Two.")
    assert said.outcome is Outcome.SAID
    assert twilio.entries == []  # sent, not heard yet
    waiting = asyncio.create_task(speaker.finished(said))
    twilio.play(speaker)
    await asyncio.wait_for(waiting, 1)
    assert [(e.text, e.interrupted) for e in twilio.entries] == [("One. Two.", None)]
    assert history == [ChatMessage("assistant", "One. Two.")]
    assert not speaker.playing


async def test_an_interruption_settled_records_what_was_heard_as_cut() -> None:
    twilio = Twilio()
    speaker, history = await make_speaker(
        twilio, ScriptedLanguageModel(["First part. ", "Second part."])
    )
    await speaker.answer(REQUEST, TurnTimer(last_speech=0, endpoint=0))
    first_sentence_marks = 5  # 660 ms of audio in four chunks, and the sentence's own mark
    twilio.play(speaker, first_sentence_marks)
    interruption = await speaker.interrupt()
    assert twilio.sent[-1]["event"] == "clear"
    assert interruption.cut == (1,)
    speaker.settle(interruption)
    assert [(e.text, e.interrupted) for e in twilio.entries] == [("First part.", True)]
    assert history[-1].role == "system"  # the LLM is told the caller did not hear the rest


async def test_resume_says_the_rest_and_records_one_whole_utterance() -> None:
    twilio = Twilio()
    speaker, _ = await make_speaker(twilio, ScriptedLanguageModel(["First part. Second part."]))
    await speaker.answer(REQUEST, TurnTimer(last_speech=0, endpoint=0))
    twilio.play(speaker, 5)  # the first sentence
    interruption = await speaker.interrupt()
    twilio.sent.clear()
    said = await speaker.resume(interruption)
    assert said is not None
    twilio.play(speaker)
    await asyncio.wait_for(speaker.finished(said), 1)
    assert [(e.text, e.interrupted) for e in twilio.entries] == [("First part. Second part.", None)]


async def test_an_answer_calling_end_call_says_so() -> None:
    twilio = Twilio()
    speaker, _ = await make_speaker(twilio, ScriptedLanguageModel(["Bye."], tools=["end_call"]))
    said = await speaker.answer(REQUEST, TurnTimer(last_speech=0, endpoint=0))
    assert said.outcome is Outcome.END_CALL


async def test_a_failing_llm_is_answered_with_the_fallback() -> None:
    twilio = Twilio()
    fallback = b"\xff" * 1600
    speaker, _ = await make_speaker(twilio, ScriptedLanguageModel([], fail=True), fallback)
    said = await speaker.answer(REQUEST, TurnTimer(last_speech=0, endpoint=0))
    assert said.outcome is Outcome.FELL_BACK
    twilio.play(speaker)
    await asyncio.wait_for(speaker.finished(said), 1)
    [entry] = twilio.entries
    assert entry.text == FALLBACK_TEXT
    assert "down" in (entry.error or "")


async def test_cancelling_an_answer_cuts_it_and_closes_the_llm() -> None:
    twilio = Twilio()
    closed = asyncio.Event()

    class Hanging:
        async def stream(self, request: LlmRequest, usage: LlmUsage) -> AsyncGenerator[str, None]:
            try:
                yield "Hello there. And"
                await asyncio.Event().wait()
                yield ""
            finally:
                closed.set()

    speaker, _ = await make_speaker(twilio, Hanging())
    answering = asyncio.create_task(speaker.answer(REQUEST, TurnTimer(0, 0)))
    await twilio.marked.wait()
    answering.cancel()
    with pytest.raises(asyncio.CancelledError):
        await answering
    assert closed.is_set()
    interruption = await speaker.interrupt()
    assert interruption.cut == (1,)
