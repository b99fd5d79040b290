"""A scripted speech-to-speech provider for calls on the loop's clock: the test says what the
model says (`emit`), and what the call asked of it is recorded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from voice_server.providers.base import (
    ChatMessage,
    ProviderError,
    SpeechEvent,
    SpeechOptions,
)


@dataclass
class ScriptedConversation:
    events_out: asyncio.Queue[SpeechEvent | ProviderError] = field(default_factory=asyncio.Queue)
    audio_in: int = 0  # bytes of caller audio pushed
    asked: list[str | None] = field(default_factory=list)  # respond(instructions)
    cuts: list[tuple[str | None, int]] = field(default_factory=list)
    remembered: list[ChatMessage] = field(default_factory=list)

    def push_audio(self, ulaw: bytes) -> None:
        self.audio_in += len(ulaw)

    async def events(self) -> AsyncIterator[SpeechEvent]:
        while True:
            event = await self.events_out.get()
            if isinstance(event, ProviderError):
                raise event
            yield event

    async def respond(self, instructions: str | None = None) -> None:
        self.asked.append(instructions)

    async def cut(self, item_id: str | None, heard_ms: int) -> None:
        self.cuts.append((item_id, heard_ms))

    async def remember(self, message: ChatMessage) -> None:
        self.remembered.append(message)


class ScriptedSpeech:
    """`SpeechToSpeech` whose sessions say what `emit` gives them."""

    def __init__(self, opens: asyncio.Event | None = None) -> None:
        """With `opens`, a session opens only once it is set."""
        self._opens = opens
        self.sessions: list[ScriptedConversation] = []
        self.options: list[SpeechOptions] = []
        self.opened = asyncio.Event()

    @asynccontextmanager
    async def open_session(self, options: SpeechOptions) -> AsyncIterator[ScriptedConversation]:
        if self._opens is not None:
            await self._opens.wait()
        conversation = ScriptedConversation()
        self.options.append(options)
        self.sessions.append(conversation)
        self.opened.set()
        yield conversation

    def emit(self, *events: SpeechEvent | ProviderError) -> None:
        for event in events:
            self.sessions[-1].events_out.put_nowait(event)
