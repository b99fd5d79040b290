"""Providers for unit tests of a call, scripted, with settable delays (STYLE.md #12).

Each keeps what it was asked and notices a stream closed before its end (`closed_early`), so
a test can tell a barge-in that closed the LLM and TTS streams from one that drained them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import numpy as np

from voice_server.providers.base import LlmRequest, LlmUsage, ToolCall, TtsRequest

CHAR_MS = 60  # the fake voice speaks one character per 60 ms (three 20 ms frames)
_PIECE_MS = 100  # audio per piece the fake TTS yields


@dataclass(frozen=True)
class Reply:
    text: str
    end_call: bool = False  # the model calls the `end_call` tool after saying `text`


class ScriptedLanguageModel:
    """Answers each request with the next reply, a word every `token_delay_s` seconds."""

    def __init__(self, *replies: str | Reply, token_delay_s: float = 0.0) -> None:
        self._replies = deque(Reply(r) if isinstance(r, str) else r for r in replies)
        self._token_delay_s = token_delay_s
        self.requests: list[LlmRequest] = []
        self.closed_early = 0

    async def stream(self, request: LlmRequest, usage: LlmUsage) -> AsyncGenerator[str, None]:
        self.requests.append(request)
        reply = self._replies.popleft()  # an unscripted request fails the call, loudly
        finished = False
        try:
            for index, word in enumerate(reply.text.split(" ")):
                await asyncio.sleep(self._token_delay_s)
                yield word if index == 0 else f" {word}"
            if reply.end_call:
                usage.tool_calls.append(ToolCall(name="end_call", arguments="{}"))
            finished = True
        finally:
            if not finished:
                self.closed_early += 1


def speech_ms(text: str) -> float:
    """How long the fake voice takes to say `text`."""
    return len(text) * CHAR_MS


class PacedTextToSpeech:
    """A voiced 8 kHz tone, `CHAR_MS` per character, in 100 ms pieces `piece_delay_s` apart."""

    def __init__(self, piece_delay_s: float = 0.0) -> None:
        self._piece_delay_s = piece_delay_s
        self.texts: list[str] = []
        self.closed_early: list[str] = []

    async def stream(self, request: TtsRequest) -> AsyncGenerator[tuple[int, bytes], None]:
        self.texts.append(request.text)
        samples = np.arange(int(8 * speech_ms(request.text)))
        pcm = (np.sin(2 * np.pi * 220 * samples / 8000) * 6000).astype(np.int16).tobytes()
        piece = 2 * 8 * _PIECE_MS
        finished = False
        try:
            for offset in range(0, len(pcm), piece):
                await asyncio.sleep(self._piece_delay_s)
                yield 8000, pcm[offset : offset + piece]
            finished = True
        finally:
            if not finished:
                self.closed_early.append(request.text)
