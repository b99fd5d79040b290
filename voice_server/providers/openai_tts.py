"""Streaming text-to-speech over OpenAI's `/audio/speech`, as raw 24 kHz PCM16.

The request is one of the two a caller waits on, sent by `openai_live` (docs/openai.md §6: the
body streams as the speech is made). `response_format="pcm"` is headerless 24 kHz, 16-bit
little-endian mono, so the chunks go out as they arrive, odd lengths included;
`speech_audio.ulaw_frames` resamples and frames them. Leaving the generator early closes the
response and drops the connection.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from voice_server.providers.base import TtsRequest
from voice_server.providers.openai_live import READ_BYTES, LiveRequests

PROVIDER = "openai-tts"
PCM_RATE_HZ = 24_000  # what `response_format="pcm"` produces (§6)


def takes_instructions(model: str) -> bool:
    """Speaking instructions are not accepted by the tts-1 family (§6)."""
    return not model.startswith("tts-1")


class OpenAiTextToSpeech:
    """`TextToSpeech` over the streaming speech endpoint. `instructions` (a speaking style) are
    sent only to models that take them."""

    def __init__(self, requests: LiveRequests, *, instructions: str | None = None) -> None:
        self._requests = requests
        self._instructions = instructions

    async def stream(self, request: TtsRequest) -> AsyncGenerator[tuple[int, bytes], None]:
        body = {
            "model": request.model,
            "voice": request.voice,
            "input": request.text,
            "response_format": "pcm",
        }
        if self._instructions and takes_instructions(request.model):
            body["instructions"] = self._instructions
        async with self._requests.post("audio/speech", body, PROVIDER) as audio:
            async for chunk in audio.iter_chunked(READ_BYTES):
                yield PCM_RATE_HZ, chunk
