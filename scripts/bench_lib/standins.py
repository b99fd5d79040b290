"""The OpenAI stand-ins for the benchmark, in a process of their own, with fixed latencies.

The tests' `FakeOpenAiHttp` (chat SSE, speech PCM), and on one WebSocket base URL
(`RealtimeRoutes`, by the connect's query as OpenAI routes it) `FakeRealtime` for transcription
sessions and `FakeRealtimeConversation` for speech-to-speech ones. Both run a real VAD on every
20 ms frame of the μ-law appended to them, as the real service does: speech started, speech
stopped after the session's `silence_duration_ms`, then the transcript `transcribe_delay_s`
later (transcription) or the spoken answer (conversation). Their answers are the size of real
ones:

- chat: `ANSWER`, three sentences in 30 token deltas, the first `llm_ms` after the request and
  the others one every `token_ms` (a real model streams some 50-100 tokens a second);
- speech: as many seconds of 24 kHz PCM as the text takes to say at `CHARS_PER_S`, the first
  byte `tts_ms` after the request and the rest at once (the real service outruns real time);
- speech to speech: `ANSWER` spoken as 8 kHz μ-law as long as the text takes to say, the first
  audio `speech_ms` after the caller's turn ended, then 200 ms deltas at `SPEECH_PACE` times
  real time (the real service sends faster than it plays), the transcript interleaved, then
  `response.done` with usage. It keeps nothing per session or event.

Serves one `--part` (`PARTS`) and prints one JSON line with its base URL, then serves until
killed.

    python -m bench_lib.standins --part http --llm-ms 250 --token-ms 15 --tts-ms 150
    python -m bench_lib.standins --part realtime --stt-ms 150 --speech-ms 700
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
from collections.abc import Callable, Mapping
from typing import Any

import uvloop
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from media.codec import SAMPLE_RATE, pcm16_to_ulaw
from tests.voice_server.openai_fakes import (
    FakeOpenAiHttp,
    FakeRealtime,
    serve_http,
    serve_realtime,
    voiced_tone,
)
from tests.voice_server.realtime_conversation_fake import (
    FakeRealtimeConversation,
    RealtimeRoutes,
    Reply,
)
from voice_server.call.sentences import SentenceSplitter

PARTS = ("http", "realtime")
"""Each a process of its own: the Realtime recogniser runs a VAD on every frame of every call,
and in the same loop as the chat and TTS stand-ins it would delay their fixed latencies (which
the bench counts as the server's own time) as the load grows."""
CALLER_SAID = "What are your opening hours?"
ANSWER = (
    "Our opening hours are nine to five on weekdays. On Saturdays we open from ten until two."
    " Is there anything else I can help you with today?"
)
TOKENS = re.findall(r" ?\w+|[^\w\s]", ANSWER)  # words with their leading space, punctuation
CHARS_PER_S = 14.0  # speech rate: about 150 words a minute
SPEECH_RATE_HZ = 24_000  # `pcm`: 16-bit little-endian mono at 24 kHz
SPEECH_PACE = 1.25  # speech to speech: audio sent this many times faster than it plays


def tokens_before_speech() -> int:
    """How many tokens the server must have before it can speak: it sends a sentence to the
    TTS once the token after its full stop has arrived (`SentenceSplitter`)."""
    splitter = SentenceSplitter()
    for count, token in enumerate(TOKENS, start=1):
        if splitter.push(token):
            return count
    return len(TOKENS)


class _Discard(list[Any]):
    """A list that keeps nothing: the fake records every event, which a long benchmark
    cannot afford (hundreds of appends a second)."""

    def append(self, item: Any) -> None:
        """Drop `item`."""


def held(app: ASGIApp, latencies_s: Mapping[str, float], token_s: float) -> ASGIApp:
    """`app`, with requests to the paths in `latencies_s` held that long before they start, and
    the chat chunks `token_s` apart from the first on."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        if delay := latencies_s.get(scope["path"]):
            await asyncio.sleep(delay)
        if scope["path"] != "/v1/chat/completions":
            await app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        chunks = 0
        first_at = 0.0

        async def paced(message: Message) -> None:
            """Each chunk at its own moment after the first, as a model streams at its own
            pace: a chunk sent late does not delay the ones after it."""
            nonlocal chunks, first_at
            if message["type"] == "http.response.body" and message.get("body"):
                if chunks:
                    await asyncio.sleep(first_at + chunks * token_s - loop.time())
                else:
                    first_at = loop.time()
                chunks += 1
            await send(message)

        await app(scope, receive, paced)

    return wrapped


def speech_for(tone: bytes) -> Callable[[str], bytes]:
    """The TTS: `text`'s length of `tone`, at `CHARS_PER_S`."""

    def speak(text: str) -> bytes:
        samples = int(len(text) / CHARS_PER_S * SPEECH_RATE_HZ)
        return tone[: 2 * samples]

    return speak


def conversation(first_audio_s: float, answer: str = ANSWER) -> FakeRealtimeConversation:
    """The speech-to-speech model: hears `CALLER_SAID` and speaks `answer` (see above)."""
    ulaw = pcm16_to_ulaw(voiced_tone(len(answer) / CHARS_PER_S, SAMPLE_RATE))
    fake = FakeRealtimeConversation(lambda audio: CALLER_SAID, Reply(answer, ulaw))
    fake.first_audio_delay_s = first_audio_s
    fake.delta_delay_s = fake.delta_bytes / SAMPLE_RATE / SPEECH_PACE  # μ-law: a byte a sample
    fake.record = False
    return fake


async def serve(
    part: str, *, stt_s: float, llm_s: float, token_s: float, tts_s: float, speech_s: float
) -> None:
    """Serve `part` ("http" or "realtime") until SIGTERM, once its base URL is printed."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if part == "http":
        http = FakeOpenAiHttp()
        http.chat_deltas = [{"role": "assistant", "content": TOKENS[0]}]
        http.chat_deltas += [{"content": token} for token in TOKENS[1:]]
        http.speech_for = speech_for(voiced_tone(30.0, SPEECH_RATE_HZ))
        latencies = {"/v1/chat/completions": llm_s, "/v1/audio/speech": tts_s}
        http.app = held(http.app, latencies, token_s)  # type: ignore[assignment]
        async with serve_http(http):
            print(json.dumps({"base_url": f"{http.base_url}/v1"}), flush=True)
            await stop.wait()
        return
    realtime = FakeRealtime()
    realtime.listen = True
    realtime.transcribe_delay_s = stt_s
    realtime.recognise = lambda audio: CALLER_SAID
    realtime.events = _Discard()
    realtime.utterances = _Discard()
    routes = RealtimeRoutes(realtime, conversation(speech_s))
    async with serve_realtime(routes):
        print(json.dumps({"websocket_base_url": routes.websocket_base_url}), flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stt-ms", type=float, default=150.0, help="speech stopped → transcript")
    parser.add_argument("--llm-ms", type=float, default=250.0, help="request → first token")
    parser.add_argument("--token-ms", type=float, default=15.0, help="token → next token")
    parser.add_argument("--tts-ms", type=float, default=150.0, help="request → first audio byte")
    parser.add_argument(
        "--speech-ms", type=float, default=700.0, help="speech model: turn end → first audio"
    )
    parser.add_argument(
        "--part",
        choices=PARTS,
        required=True,
        help="http: chat and TTS; realtime: the Realtime recogniser and speech-to-speech model",
    )
    args = parser.parse_args()
    names = ("stt", "llm", "token", "tts", "speech")
    seconds = {f"{name}_s": getattr(args, f"{name}_ms") / 1000 for name in names}
    uvloop.run(serve(args.part, **seconds))
    sys.exit(0)


if __name__ == "__main__":
    main()
