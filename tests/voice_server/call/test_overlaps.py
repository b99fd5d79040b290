"""Overlaps the agent could cause: a new response over the old one's queued audio, an answer
started over a caller who is still talking, the answer to keys started over the caller's words.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import pytest

from media.codec import FRAME_BYTES
from media.twilio import OutboundMedia
from stores.turn_taking import TurnTaking
from tests.voice_server.call.harness import GREETING, Call, Sent, running_call, speech
from tests.voice_server.call.scripted import PacedTextToSpeech, ScriptedLanguageModel
from tests.voice_server.fakes import frame_texts
from voice_server.providers.base import ChatMessage, SttOptions, SttResult

pytestmark = pytest.mark.looptime

DEFAULTS = TurnTaking()
QUESTION = "What are your opening hours?"
HOURS = (
    "We open at nine on weekdays. On weekends we open at ten in the morning. "
    "On public holidays we stay closed all day, and we are sorry about that."
)
REPLY = "Thank you."
BOOK, TABLE = "I would like to book", "a table for two"


def media_after(call: Call, at: float) -> list[Sent]:
    return [s for s in call.phone.sent if s.at >= at and isinstance(s.message, OutboundMedia)]


def media_between(call: Call, start: float, end: float) -> list[Sent]:
    return [s for s in media_after(call, start) if s.at < end]


async def test_a_response_replacing_one_still_playing_clears_it_first() -> None:
    # The time limit comes while the answer is playing (and still being rendered): the goodbye
    # replaces it.
    llm = ScriptedLanguageModel(HOURS, token_delay_s=0.1)
    tts = PacedTextToSpeech(piece_delay_s=0.05)
    async with running_call(
        llm=llm, tts=tts, caller_says=[QUESTION], maxCallSeconds=10, silenceRepromptMs=60_000
    ) as call:
        started = call.phone.now
        await call.phone.agent_done()
        await call.phone.say(QUESTION)
        reason = await call.ended()

    assert reason == "max-duration"
    (clear,) = call.phone.clears()
    assert 10 <= clear.at - started < 10.15, "the answer stopped at the time limit"
    goodbye_audio = media_after(call, clear.at)
    assert goodbye_audio, "the goodbye was said"
    assert all(s.played_ms >= clear.played_ms for s in goodbye_audio)
    texts = [(e.role, e.text, e.interrupted) for e in call.store.entries]
    assert texts[:2] == [("assistant", GREETING, None), ("user", QUESTION, None)]
    (cut_role, cut, interrupted), goodbye = texts[2], texts[3]
    assert (cut_role, interrupted) == ("assistant", True)
    assert HOURS.startswith(cut)
    assert len(cut) < len(HOURS)
    assert goodbye == ("assistant", DEFAULTS.maxDurationGoodbyeText, None), "in the order said"
    assert len(texts) == 4


class SegmentingSpeechToText:
    """A recogniser with its own endpointing: each scripted text is final as soon as its last
    sounding frame has been heard, whether the caller goes on talking or not."""

    def __init__(self, renders: Mapping[str, bytes]) -> None:
        self._texts = frame_texts(renders)
        self._last = {self._sounding(ulaw)[-1]: text for text, ulaw in renders.items()}

    @staticmethod
    def _sounding(ulaw: bytes) -> list[bytes]:
        frames = (ulaw[i : i + FRAME_BYTES] for i in range(0, len(ulaw), FRAME_BYTES))
        return [frame for frame in frames if len(frame) == FRAME_BYTES]

    @asynccontextmanager
    async def open_session(self, options: SttOptions) -> AsyncIterator[_Segments]:
        yield _Segments(self._last)


class _Segments:
    punctuates = True

    def __init__(self, last: Mapping[bytes, str]) -> None:
        self._last = last
        self._results: asyncio.Queue[SttResult] = asyncio.Queue()

    def push_audio(self, ulaw: bytes, speech: bool) -> None:
        if (text := self._last.get(ulaw)) is not None:
            self._results.put_nowait(SttResult(text=text, final=True))

    def speech_started(self) -> None:
        pass

    def speech_ended(self) -> None:
        self._results.put_nowait(SttResult(text="", final=True))

    async def results(self) -> AsyncIterator[SttResult]:
        while True:
            yield await self._results.get()


async def test_no_answer_starts_while_the_caller_is_still_talking() -> None:
    # The recogniser finalises "I would like to book" while the caller goes on with "a table
    # for two": the agent waits for the end of the turn and answers it whole, once.
    llm = ScriptedLanguageModel(REPLY, REPLY)
    stt = SegmentingSpeechToText(await speech([BOOK, TABLE]))
    async with running_call(llm=llm, stt=stt, caller_says=[BOOK, TABLE]) as call:
        phone = call.phone
        await phone.agent_done()
        talking_from = phone.now
        await phone.say(BOOK)
        await phone.say(TABLE)
        stopped_at = phone.now
        await phone.agent_done()
        await phone.wait(1.0)

    assert media_between(call, talking_from, stopped_at) == [], "no audio while the caller talked"
    (request,) = llm.requests
    assert request.messages[-2:] == [ChatMessage("user", BOOK), ChatMessage("user", TABLE)]
    assert [(e.role, e.text) for e in call.store.entries] == [
        ("assistant", GREETING),
        ("user", BOOK),
        ("user", TABLE),
        ("assistant", REPLY),
    ]


async def test_keys_then_speech_is_answered_once_the_caller_has_finished() -> None:
    # The caller presses keys and starts talking before the inter-digit pause is over.
    llm = ScriptedLanguageModel(REPLY, REPLY)
    async with running_call(llm=llm, caller_says=[QUESTION]) as call:
        phone = call.phone
        await phone.agent_done()
        talking_from = await phone.press("42") + 0.4
        await phone.wait(0.4)
        await phone.say(QUESTION)
        stopped_at = phone.now
        await phone.agent_done()
        await phone.wait(2.0)

    assert media_between(call, talking_from, stopped_at) == [], "no answer started over the caller"
    (request,) = llm.requests
    assert request.messages[-2:] == [
        ChatMessage("user", "(The caller pressed the keys: 4 2)"),
        ChatMessage("user", QUESTION),
    ]
    entries = [(e.role, e.text, e.interrupted) for e in call.store.entries]
    assert entries == [
        ("assistant", GREETING, None),
        ("user", "42", None),
        ("user", QUESTION, None),
        ("assistant", REPLY, None),
    ]


@pytest.mark.parametrize("keys", ["5#", "#5#"])
async def test_keys_ended_by_hash_over_the_agent_are_answered(keys: str) -> None:
    # The '#' ends the sequence at once: its answer must not be cancelled by the barge-in the
    # keys started.
    llm = ScriptedLanguageModel(HOURS, REPLY)
    async with running_call(llm=llm, caller_says=[QUESTION]) as call:
        phone = call.phone
        await phone.agent_done()
        await phone.say(QUESTION)
        await phone.agent_playing_for(1.0)
        await phone.press(keys)
        await phone.until(lambda: REPLY in call.said("assistant"), timeout_s=10)

    assert call.said("user") == [QUESTION, "5"]
    entries = [(e.role, e.text == REPLY, e.interrupted) for e in call.store.entries]
    assert entries[-3:] == [
        ("assistant", False, True),
        ("user", False, None),
        ("assistant", True, None),
    ]
