"""The three provider seams of a call: speech-to-text, language model, text-to-speech.

Each is a small Protocol with a written contract. Implementations never touch the database or the
WebSocket; the call session owns both. Every failure a provider can have surfaces as
`ProviderError`, whose `retryable` flag tells the caller whether another try makes sense.
Cancelling a provider's stream (the task awaiting it is cancelled, or the `async with` block is
left early) must close the underlying connection or process at once, not drain it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


class ProviderError(Exception):
    """A provider could not deliver; `retryable` says whether trying again may succeed."""

    def __init__(self, message: str, *, provider: str, retryable: bool = False) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class SttResult:
    """Text recognised in the caller's audio; `final` closes one utterance."""

    text: str
    final: bool


class SttSession(Protocol):
    """One caller's streaming recognition, open for the whole call."""

    punctuates: bool
    """Whether its texts end sentences with punctuation (then a text without a full stop,
    question or exclamation mark is a sentence the caller has not finished)."""

    def push_audio(self, ulaw: bytes, speech: bool) -> None:
        """Queue one 20 ms frame of 8 kHz μ-law audio. Never blocks; called 50 times a second.

        `speech`: the frame carries the caller's voice (the call's VAD hears it, clearly above
        the line's noise floor). A recogniser may hold such frames briefly to send fewer
        messages; the quiet that ends a turn is never among them."""

    def speech_started(self) -> None:
        """The call's own VAD heard speech begin. Providers with their own VAD may ignore it."""

    def speech_ended(self) -> None:
        """The call's own endpointing decided the caller's turn ended: produce a final result for
        the utterance (an empty text when nothing was recognised)."""

    def results(self) -> AsyncIterator[SttResult]:
        """Partial and final results in order. Raises `ProviderError` when recognition fails."""


@dataclass(frozen=True, slots=True)
class SttOptions:
    model: str
    language: str = "en-US"
    turn_detection: Literal["semantic_vad", "server_vad"] = "server_vad"
    """For recognisers that end turns themselves: on the words' meaning, or on silence."""
    eagerness: Literal["low", "medium", "high", "auto"] = "auto"
    """With `semantic_vad`, how soon a turn is ended."""
    end_silence_ms: int | None = None
    """With `server_vad`, the caller's silence that ends a turn, ms (None: the recogniser's
    own default)."""


class SpeechToText(Protocol):
    def open_session(self, options: SttOptions) -> AbstractAsyncContextManager[SttSession]:
        """Open a recognition session; leaving the block closes it and its connection."""


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the model may call; `parameters` is its JSON Schema."""

    name: str
    description: str
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: str  # JSON text, as the model wrote it


@dataclass(frozen=True, slots=True)
class LlmRequest:
    model: str
    messages: Sequence[ChatMessage]
    temperature: float = 0.7
    max_tokens: int = 300
    tools: Sequence[ToolSpec] = ()


@dataclass(slots=True)
class LlmUsage:
    """What the stream produced besides text, filled in by the provider as the stream ends:
    token counts (0 when not reported) and the tool calls the model made."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    tool_calls: list[ToolCall] = field(default_factory=list)
    extra: dict[str, int] = field(default_factory=dict)


class LanguageModel(Protocol):
    def stream(self, request: LlmRequest, usage: LlmUsage) -> AsyncGenerator[str, None]:
        """Yield the answer's text as it is generated. Closing the iterator (`aclose()`, or
        cancelling the task iterating it) closes the request. Raises `ProviderError`."""


@dataclass(frozen=True, slots=True)
class TtsRequest:
    model: str
    voice: str
    text: str


class TextToSpeech(Protocol):
    def stream(self, request: TtsRequest) -> AsyncGenerator[tuple[int, bytes], None]:
        """Yield `(sample_rate_hz, pcm16_mono_little_endian)` pieces of any size, odd lengths
        included, in order. Closing the iterator stops synthesis. Raises `ProviderError`."""


class SttResults:
    """The queue between a recognition session's worker and its `results()` reader: results in
    order, and a failure that the reader raises when it gets to it."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[SttResult | ProviderError] = asyncio.Queue()

    def put(self, result: SttResult | ProviderError) -> None:
        self._queue.put_nowait(result)

    async def stream(self) -> AsyncIterator[SttResult]:
        while True:
            result = await self._queue.get()
            if isinstance(result, ProviderError):
                raise result
            yield result


# -- speech to speech: one model hears the caller and speaks back ------------------------------


@dataclass(frozen=True, slots=True)
class SpeechOptions:
    """One call's speech-to-speech conversation. Audio is 8 kHz μ-law both ways."""

    model: str
    instructions: str
    voice: str
    transcription_model: str
    """Transcribes the caller's audio (the model itself hears the audio, not this text)."""
    max_output_tokens: int
    turn_detection: Literal["semantic_vad", "server_vad"] = "semantic_vad"
    eagerness: Literal["low", "medium", "high", "auto"] = "auto"
    end_silence_ms: int = 550
    """With `server_vad`: the caller's silence that ends their turn."""
    language: str = "en-US"
    tools: Sequence[ToolSpec] = ()
    history: Sequence[ChatMessage] = ()
    """The conversation so far, as text (a session reopened mid-call)."""


@dataclass(frozen=True, slots=True)
class AgentAudio:
    """μ-law audio of the agent's item `item_id`, in order."""

    item_id: str
    ulaw: bytes


@dataclass(frozen=True, slots=True)
class AgentText:
    """More of the transcript of what the agent's item `item_id` says."""

    item_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class CallerSpeech:
    """The model heard the caller start (`started`) or stop speaking; `audio_ms` is where, in
    the audio pushed since the session opened."""

    started: bool
    audio_ms: int


@dataclass(frozen=True, slots=True)
class CallerText:
    """The transcript of one of the caller's turns."""

    text: str


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """A response ended (`status`: completed, cancelled, incomplete); tokens as reported."""

    status: str
    input_tokens: int = 0
    output_tokens: int = 0


SpeechEvent = AgentAudio | AgentText | CallerSpeech | CallerText | ResponseDone | ToolCall


class SpeechConversation(Protocol):
    """One call's open speech-to-speech session. The provider ends the caller's turns itself
    and answers each one without being asked."""

    def push_audio(self, ulaw: bytes) -> None:
        """Queue caller audio (8 kHz μ-law, any size). Never blocks."""

    def events(self) -> AsyncIterator[SpeechEvent]:
        """What the session says, in order. Raises `ProviderError` when the session fails
        (dropped, refused, rate-limited, or an error the server reports)."""

    async def respond(self, instructions: str | None = None) -> None:
        """Ask for a response now (`instructions`: for this response only)."""

    async def cut(self, item_id: str | None, heard_ms: int) -> None:
        """The caller interrupted: stop the response in progress, and make the model forget the
        part of item `item_id` after `heard_ms` of its audio (what the caller did not hear)."""

    async def remember(self, message: ChatMessage) -> None:
        """Add a text message to the conversation (what was said outside the model)."""


class SpeechToSpeech(Protocol):
    def open_session(
        self, options: SpeechOptions
    ) -> AbstractAsyncContextManager[SpeechConversation]:
        """Open a session; leaving the block closes it. Raises `ProviderError`."""
