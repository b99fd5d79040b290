"""Work done while the phone is still ringing, so the greeting plays at once.

The voice webhook starts rendering the agent's greeting the moment it accepts a call; the media
stream picks the result up a second or two later. Renders are cached per agent version (its id,
last update, voice and greeting text), so most calls find the audio ready.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass

from stores.agents import Agent
from voice_server.call.speech_audio import render_ulaw
from voice_server.log import get_logger
from voice_server.providers.base import ProviderError, TextToSpeech, TtsRequest

log = get_logger(__name__)

DEFAULT_GREETING = "Hello! How can I help you today?"


def greeting_text(agent: Agent) -> str:
    return agent.greeting.strip() or DEFAULT_GREETING


@dataclass(frozen=True)
class _Version:
    agent_id: str
    updated_at: str
    model: str
    voice: str
    text: str


class GreetingCache:
    """Rendered greetings (μ-law), one render per agent version, least recently used dropped."""

    def __init__(self, capacity: int = 512) -> None:
        self._capacity = capacity
        self._renders: OrderedDict[_Version, asyncio.Task[bytes | None]] = OrderedDict()

    def prepare(
        self, agent: Agent, tts: TextToSpeech, text: str | None = None
    ) -> asyncio.Future[bytes | None]:
        """Start (or reuse) the render of `text` (by default the agent's greeting) in the
        agent's voice; the future yields None on failure. Renders are shared by calls, so each
        caller gets a shielded view: a call that hangs up while waiting cancels only its own."""
        version = _Version(
            agent.id,
            agent.updated_at.isoformat(),
            agent.ttsModel,
            agent.ttsVoice,
            text or greeting_text(agent),
        )
        task = self._renders.get(version)
        if task is None or (task.done() and task.result() is None):
            request = TtsRequest(model=version.model, voice=version.voice, text=version.text)
            task = asyncio.create_task(_render(tts, request), name=f"greeting-{agent.id}")
            self._renders[version] = task
        self._renders.move_to_end(version)
        while len(self._renders) > self._capacity:
            self._renders.popitem(last=False)
        return asyncio.shield(task)

    async def close(self) -> None:
        for task in self._renders.values():
            task.cancel()
        await asyncio.gather(*self._renders.values(), return_exceptions=True)
        self._renders.clear()


async def _render(tts: TextToSpeech, request: TtsRequest) -> bytes | None:
    try:
        return await render_ulaw(tts, request)
    except ProviderError as error:
        log.error("greeting could not be rendered; it will be synthesised live", error=str(error))
        return None
