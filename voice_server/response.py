"""One agent reply: LLM tokens → sentences → TTS audio → μ-law chunks and marks to Twilio.

Speech starts on the first complete sentence, not the whole answer. Everything the reply waits
on is timed and kept with the turn. Cancelling the task running a reply closes the LLM and TTS
streams (their `async with`/`aclosing` blocks), which is how barge-in stops it.
"""

from __future__ import annotations

import time
from contextlib import aclosing
from dataclasses import dataclass, field

from voice_server.outbound import Outbound
from voice_server.providers.base import (
    LanguageModel,
    LlmRequest,
    LlmUsage,
    TextToSpeech,
    TtsRequest,
)
from voice_server.sentences import SentenceSplitter
from voice_server.speech_audio import ulaw_frames


@dataclass
class Utterance:
    """What the agent is saying in one turn, and how far it got."""

    number: int
    text: str = ""
    sent_all: bool = False
    recorded: bool = False
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class TurnTimer:
    """Monotonic timestamps of one turn, from the caller's last speech frame onwards."""

    last_speech: float
    endpoint: float
    final: float = 0.0
    llm_first_token: float = 0.0
    tts_requested: float = 0.0
    tts_first_byte: float = 0.0
    first_audio: float = 0.0

    def metrics(self) -> dict[str, float]:
        """The turn's latency figures in milliseconds, each part and the total."""
        parts = {
            "endpointing_ms": self.endpoint - self.last_speech,
            "stt_final_ms": self.final - self.endpoint,
            "llm_first_token_ms": self.llm_first_token - self.final,
            "tts_first_byte_ms": self.tts_first_byte - self.tts_requested,
            "first_audio_ms": self.first_audio - self.last_speech,
        }
        return {name: round(seconds * 1000, 1) for name, seconds in parts.items() if seconds >= 0}


@dataclass(frozen=True)
class Voice:
    model: str
    voice: str


class Responder:
    """Speaks for one call: fixed texts (greeting, apologies) and LLM answers."""

    def __init__(self, outbound: Outbound, tts: TextToSpeech, voice: Voice) -> None:
        self._outbound = outbound
        self._tts = tts
        self._voice = voice

    async def say_rendered(self, utterance: Utterance, text: str, ulaw: bytes) -> None:
        """Play audio rendered earlier (a cached greeting) for `text`."""
        utterance.text = text
        await self._outbound.send_audio(utterance.number, ulaw, text_end=0)
        await self._outbound.send_mark(utterance.number, len(text))
        utterance.sent_all = True

    async def answer(
        self, utterance: Utterance, llm: LanguageModel, request: LlmRequest, timer: TurnTimer
    ) -> LlmUsage:
        """Stream the LLM's answer to `request` into speech, sentence by sentence."""
        usage = LlmUsage()
        splitter = SentenceSplitter()
        async with aclosing(llm.stream(request, usage)) as tokens:
            async for token in tokens:
                timer.llm_first_token = timer.llm_first_token or time.monotonic()
                for sentence in splitter.push(token):
                    await self._speak(utterance, sentence, timer)
        if rest := splitter.flush():
            await self._speak(utterance, rest, timer)
        utterance.sent_all = True
        return usage

    async def say(self, utterance: Utterance, text: str) -> None:
        await self._speak(utterance, text, None)
        utterance.sent_all = True

    async def _speak(self, utterance: Utterance, sentence: str, timer: TurnTimer | None) -> None:
        heard_before = len(utterance.text)
        utterance.text = f"{utterance.text} {sentence}" if utterance.text else sentence
        request = TtsRequest(model=self._voice.model, voice=self._voice.voice, text=sentence)
        requested = time.monotonic()
        async with aclosing(ulaw_frames(self._tts, request)) as runs:
            async for run in runs:
                if timer and not timer.tts_first_byte:
                    timer.tts_requested, timer.tts_first_byte = requested, time.monotonic()
                sent_at = await self._outbound.send_audio(utterance.number, run, heard_before)
                if timer and not timer.first_audio:
                    timer.first_audio = sent_at
        await self._outbound.send_mark(utterance.number, len(utterance.text))
