"""Offline providers: PocketSphinx speech-to-text, espeak-ng speech, and a stand-in for an LLM.

They run with no network and no key, for the demo, development and CI. PocketSphinx's bundled
English model is weak on synthetic telephone audio (the demo agent recognises with Whisper,
`local_whisper.py`, instead; PocketSphinx stays for its low latency). The stand-in is not a
language model at all: it answers deterministically from what it was given, so tests can check
exact wording.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pocketsphinx import Decoder

from media.codec import ulaw_to_pcm16
from media.resample import Resampler
from media.wav import WavError, parse_wav_header
from voice_server.providers.base import (
    LlmRequest,
    LlmUsage,
    ProviderError,
    SttOptions,
    SttResult,
    ToolCall,
    TtsRequest,
)
from voice_server.providers.utterance_audio import UtteranceSession
from voice_server.providers.workers import running

STT_MODEL = "pocketsphinx"
LLM_MODEL = "stand-in"
TTS_MODEL = "espeak-ng"

_DECODER_RATE = 16_000  # the bundled acoustic model is trained on 16 kHz audio
_BACKLOG_MS = 5000  # audio waiting for the decoder; more is dropped until it catches up


class PocketSphinxSpeechToText:
    """Decodes each utterance the call's VAD delimits, in a worker thread per session."""

    @asynccontextmanager
    async def open_session(self, options: SttOptions) -> AsyncIterator[_PocketSphinxSession]:
        try:
            decoder = await asyncio.to_thread(_new_decoder)
        except RuntimeError as error:
            raise ProviderError(str(error), provider=STT_MODEL) from error
        session = _PocketSphinxSession(decoder)
        async with running(session.decode_forever()):
            yield session


def _new_decoder() -> Any:
    return Decoder(logfn="/dev/null")


class _PocketSphinxSession(UtteranceSession):
    punctuates = False

    def __init__(self, decoder: Any) -> None:
        super().__init__(_BACKLOG_MS, STT_MODEL)
        self._decoder = decoder

    async def decode_forever(self) -> None:
        resampler: Resampler | None = None
        while True:
            item = await self._work.take()
            try:
                if item is None:
                    tail = resampler.flush() if resampler else b""
                    text = await asyncio.to_thread(self._finish, tail, resampler is not None)
                    self._results.put(SttResult(text=text, final=True))
                    resampler = None
                    continue
                if resampler is None:
                    resampler = Resampler(8000, _DECODER_RATE)
                    await asyncio.to_thread(self._decoder.start_utt)
                pcm = resampler.process(ulaw_to_pcm16(item))
                if pcm:
                    await asyncio.to_thread(self._decoder.process_raw, pcm, False, False)
            except RuntimeError as error:
                self._results.put(ProviderError(str(error), provider=STT_MODEL))
                resampler = None

    def _finish(self, tail: bytes, started: bool) -> str:
        if not started:
            return ""
        if tail:
            self._decoder.process_raw(tail, False, False)
        self._decoder.end_utt()
        hypothesis = self._decoder.hyp()
        return str(hypothesis.hypstr).strip() if hypothesis is not None else ""


_FAREWELL = re.compile(r"\b(good ?bye|bye)\b", re.IGNORECASE)
_VOICE = re.compile(r"^[A-Za-z0-9_+\-]{1,40}$")


class EspeakTextToSpeech:
    """espeak-ng as a child process per sentence; WAV on its stdout is streamed as PCM16."""

    def __init__(self, executable: str = "espeak-ng", words_per_minute: int = 165) -> None:
        self._executable = executable
        self._words_per_minute = words_per_minute

    async def stream(self, request: TtsRequest) -> AsyncGenerator[tuple[int, bytes], None]:
        if not _VOICE.match(request.voice):
            raise ProviderError(f"invalid voice name {request.voice!r}", provider=TTS_MODEL)
        try:
            process = await asyncio.create_subprocess_exec(
                self._executable,
                *("--stdout", "-v", request.voice, "-s", str(self._words_per_minute)),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as error:
            raise ProviderError(f"cannot start: {error}", provider=TTS_MODEL) from error
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            process.stdin.write(request.text.encode())
            process.stdin.close()
            async for piece in _pcm_from_wav_stream(process.stdout):
                yield piece
            if await process.wait() != 0:
                stderr = await process.stderr.read() if process.stderr else b""
                message = stderr.decode(errors="replace").strip()
                raise ProviderError(
                    f"exited with {process.returncode}: {message}", provider=TTS_MODEL
                )
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def _pcm_from_wav_stream(stdout: asyncio.StreamReader) -> AsyncIterator[tuple[int, bytes]]:
    header = b""
    while (fmt := _header(header)) is None:
        chunk = await stdout.read(4096)
        if not chunk:
            return
        header += chunk
    if fmt.channels != 1:
        raise ProviderError(f"expected mono audio, got {fmt.channels} channels", provider=TTS_MODEL)
    if rest := header[fmt.data_offset :]:
        yield fmt.sample_rate, rest
    while chunk := await stdout.read(16_384):
        yield fmt.sample_rate, chunk


def _header(data: bytes) -> Any:
    try:
        return parse_wav_header(data)
    except WavError as error:
        raise ProviderError(str(error), provider=TTS_MODEL) from error


class StandInLanguageModel:
    """NOT a language model: an offline stand-in that answers deterministically.

    It numbers the caller's turns and repeats the last thing the caller said, which shows that
    the conversation so far reaches the model and makes exact wording checkable. When the caller
    says goodbye and an `end_call` tool is offered, it says goodbye and calls the tool.
    """

    async def stream(self, request: LlmRequest, usage: LlmUsage) -> AsyncGenerator[str, None]:
        user_turns = [m.content for m in request.messages if m.role == "user"]
        heard = user_turns[-1].strip() if user_turns else ""
        farewell = _FAREWELL.search(heard) and any(t.name == "end_call" for t in request.tools)
        if farewell:
            answer = "Goodbye, and thank you for calling!"
            usage.tool_calls.append(ToolCall(name="end_call", arguments="{}"))
        elif heard:
            answer = f"Turn {len(user_turns)}. I heard you say: {heard}. Is there anything else?"
        else:
            answer = "Sorry, I did not catch that. Could you say it again?"
        usage.prompt_tokens = sum(len(m.content.split()) for m in request.messages)
        words = answer.split(" ")
        usage.completion_tokens = len(words)
        for index, word in enumerate(words):
            yield word if index == 0 else " " + word
