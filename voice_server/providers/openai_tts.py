"""Streaming text-to-speech over OpenAI's `/audio/speech`, as raw 24 kHz PCM16.

Only `with_streaming_response` streams; plain `create()` reads the whole body first
(docs/openai.md §6). `response_format="pcm"` is headerless 24 kHz, 16-bit little-endian mono, so
the chunks go out as they arrive, odd lengths included; `speech_audio.ulaw_frames` resamples and
frames them. Leaving the generator early closes the response and drops the connection.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import httpx2
import openai
from openai import AsyncOpenAI, omit

from voice_server.providers.base import TtsRequest
from voice_server.providers.openai_clients import provider_error

PROVIDER = "openai-tts"
PCM_RATE_HZ = 24_000  # what `response_format="pcm"` produces (§6)


def takes_instructions(model: str) -> bool:
    """Speaking instructions are not accepted by the tts-1 family (§6)."""
    return not model.startswith("tts-1")


class OpenAiTextToSpeech:
    """`TextToSpeech` over the streaming speech endpoint. `instructions` (a speaking style) are
    sent only to models that take them."""

    def __init__(self, client: AsyncOpenAI, *, instructions: str | None = None) -> None:
        self._client = client
        self._instructions = instructions

    async def stream(self, request: TtsRequest) -> AsyncGenerator[tuple[int, bytes], None]:
        speech = self._client.audio.speech.with_streaming_response
        instructions = self._instructions if takes_instructions(request.model) else None
        try:
            async with speech.create(
                model=request.model,
                voice=request.voice,
                input=request.text,
                response_format="pcm",
                instructions=instructions or omit,
            ) as response:
                async for chunk in response.iter_bytes():
                    yield PCM_RATE_HZ, chunk
        except (openai.OpenAIError, httpx2.TransportError) as error:
            raise provider_error(error, PROVIDER) from error
