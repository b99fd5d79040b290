"""The OpenAI stand-ins for the benchmark, in a process of their own, with fixed latencies.

The tests' `FakeOpenAiHttp` (chat SSE, speech PCM) and `FakeRealtime` in its listening mode (a
real VAD on the appended μ-law: speech started, speech stopped after the session's
`silence_duration_ms`, the transcript after `transcribe_delay_s`). An ASGI wrapper holds each
chat and speech request for its fixed latency before the fake answers, so the first token and
the first audio byte arrive that long after the request; the rest streams at once, as fast as
the real services stream. Prints one JSON line with the two base URLs, then serves until killed.

    python -m bench_lib.standins --stt-ms 150 --llm-ms 250 --tts-ms 150
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import sys
from collections.abc import Mapping
from typing import Any

import uvloop
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.voice_server.openai_fakes import (
    FakeOpenAiHttp,
    FakeRealtime,
    serve_http,
    serve_realtime,
    text_deltas,
)

ANSWER = ("Our opening hours are nine to five, Monday to Friday.", " Is there anything else?")
CALLER_SAID = "What are your opening hours?"
SPEECH_S = 1.5  # audio per synthesised sentence


class _Discard(list[dict[str, Any]]):
    """A list that keeps nothing: the fake records every event, which a long benchmark
    cannot afford (hundreds of appends a second)."""

    def append(self, item: dict[str, Any]) -> None:
        """Drop `item`."""


def held(app: ASGIApp, latencies_s: Mapping[str, float]) -> ASGIApp:
    """`app`, with requests to the paths in `latencies_s` held that long before they start."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (delay := latencies_s.get(scope["path"])):
            await asyncio.sleep(delay)
        await app(scope, receive, send)

    return wrapped


def speech_pcm(seconds: float, rate_hz: int = 24_000) -> bytes:
    """A voiced-sounding tone (a 140 Hz fundamental with harmonics), 16-bit little-endian."""
    samples = bytearray()
    for n in range(int(seconds * rate_hz)):
        t = n / rate_hz
        value = sum(math.sin(2 * math.pi * 140 * k * t) / k for k in (1, 2, 3, 5))
        samples += int(6000 * value).to_bytes(2, "little", signed=True)
    return bytes(samples)


async def serve(stt_s: float, llm_s: float, tts_s: float) -> None:
    http = FakeOpenAiHttp()
    http.chat_deltas = text_deltas(*ANSWER)
    http.speech_pcm = speech_pcm(SPEECH_S)
    http.app = held(http.app, {"/v1/chat/completions": llm_s, "/v1/audio/speech": tts_s})  # type: ignore[assignment]
    realtime = FakeRealtime()
    realtime.listen = True
    realtime.transcribe_delay_s = stt_s
    realtime.recognise = lambda audio: CALLER_SAID
    realtime.events = _Discard()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with serve_http(http), serve_realtime(realtime):
        urls = {
            "base_url": f"{http.base_url}/v1",
            "websocket_base_url": realtime.websocket_base_url,
        }
        print(json.dumps(urls), flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stt-ms", type=float, default=150.0, help="speech stopped → transcript")
    parser.add_argument("--llm-ms", type=float, default=250.0, help="request → first token")
    parser.add_argument("--tts-ms", type=float, default=150.0, help="request → first audio byte")
    args = parser.parse_args()
    uvloop.run(serve(args.stt_ms / 1000, args.llm_ms / 1000, args.tts_ms / 1000))
    sys.exit(0)


if __name__ == "__main__":
    main()
