"""Hundreds of simulated Twilio calls at real-time pace, lean enough to leave the CPU to the
server: the benchmark's load generator, run in a process of its own.

Each call does what `voice_server.simulation.simulator` does (signed webhook, TwiML, the media
stream at one 20 ms frame per tick, marks echoed once the audio before them has played, `clear`
honoured), but the caller's audio and its base64 are prepared once: a frame costs one string
format and one send, over picows (a Cython WebSocket client, about half the CPU of `websockets`
for these frames: the load generator shares a core with the stand-ins and the database, and its
own delays count in the turn latencies it measures). Agent audio is counted, not decoded, and
played in real time to find underruns: ticks where playback ran dry inside an utterance (more
audio of the same utterance, by its mark names `u<utterance>-c<n>`, arrived later with no
`clear` between).

A call (`bench_lib.calls`): greeting; then `turns` questions, each answered; every
`barge_in_every`-th call talks over the answer to its first question once it has played
`barge_in_after_s`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from picows import WSFrame, WSListener, WSMsgType, WSTransport

from media import twilio as protocol
from media.codec import FRAME_BYTES, FRAME_MS, ULAW_SILENCE, ulaw_to_pcm16
from media.turns import Endpointer, EndpointingOptions, SpeechEnded
from media.vad import VoiceActivityDetector
from voice_server.call.speech_audio import render_ulaw
from voice_server.providers.base import TtsRequest
from voice_server.providers.local import TTS_MODEL, EspeakTextToSpeech
from voice_server.simulation.caller_script import trim_silence

FRAME_S = 0.020
QUESTION = "What are your opening hours?"
INTERRUPTION = "Stop. What time do you close?"
MEDIA = (
    '{"event":"media","sequenceNumber":"%d","streamSid":"%s","media":{"track":"inbound",'
    '"chunk":"%d","timestamp":"%d","payload":"%s"}}'
)
SILENCE = base64.b64encode(ULAW_SILENCE * FRAME_BYTES).decode("ascii")


@dataclass(frozen=True)
class Script:
    turns: int = 4
    barge_in_every: int = 3
    barge_in_after_s: float = 0.6
    reply_timeout_s: float = 6.0
    quiet_s: float = 0.6  # the agent has finished after this much quiet with nothing queued


@dataclass(frozen=True)
class Target:
    """Where calls go: webhook and stream servers (several for several workers)."""

    base_urls: tuple[str, ...]
    auth_token: str
    dialled: str
    caller: str = "+15550100199"
    account_sid: str = "AC" + "0" * 32


@dataclass
class Tally:
    """What the calls measured, merged over all calls of a run."""

    calls: int = 0
    call_sids: list[str] = field(default_factory=list)  # to read back what the server said
    webhook_ms: list[float] = field(default_factory=list)  # voice webhook: post → TwiML read
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    turns: int = 0
    unanswered: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    endpointing_ms: list[float] = field(default_factory=list)  # the stand-in's, for each turn
    barge_ins: int = 0
    missed_clears: int = 0
    clear_ms: list[float] = field(default_factory=list)
    gaps: int = 0
    gap_ms: float = 0.0
    late_ticks: int = 0  # our own ticks more than 20 ms late: the client's timing error
    worst_tick_lateness_ms: float = 0.0
    call_seconds_steady: float = 0.0


async def phrase(text: str, silence_ms: float) -> Phrase:
    """The caller saying `text` (espeak-ng), as base64 payloads of whole 20 ms frames."""
    request = TtsRequest(model=TTS_MODEL, voice="en-us", text=text)
    ulaw = trim_silence(await render_ulaw(EspeakTextToSpeech(), request))
    chunks = [ulaw[i : i + FRAME_BYTES] for i in range(0, len(ulaw), FRAME_BYTES)]
    frames = [base64.b64encode(frame).decode("ascii") for frame in chunks]
    return Phrase(frames, endpointing_ms(frames, silence_ms))


@dataclass(frozen=True)
class Phrase:
    """What the caller says, and how long after its last frame the stand-in's VAD, fed with
    silence, decides the speech stopped (its hangover and the session's silence)."""

    frames: list[str]
    endpointing_ms: float


def endpointing_ms(frames: list[str], silence_ms: float) -> float:
    """Replay `frames` then silence through the VAD and endpointer `FakeRealtime` uses."""
    vad = VoiceActivityDetector()
    endpointer = Endpointer(EndpointingOptions(end_silence_ms=silence_ms))
    tail = [SILENCE] * int(5 * silence_ms / FRAME_MS)
    for index, payload in enumerate([*frames, *tail]):
        pcm = ulaw_to_pcm16(base64.b64decode(payload))
        if isinstance(endpointer.process(vad.is_speech(pcm), index * FRAME_S), SpeechEnded):
            return (index - len(frames) + 1) * FRAME_MS
    raise ValueError("the stand-in's VAD never heard the speech stop")


def _decoded_size(payload: str) -> int:
    return len(payload) // 4 * 3 - payload.endswith("=") - payload.endswith("==")


def _utterance_of(mark: str) -> str:
    return mark.partition("-")[0]


class Stream(WSListener):
    """One call's media stream, as Twilio plays it: picows' listener of its connection."""

    def __init__(self, stream_sid: str, tally: Tally) -> None:
        self._transport: WSTransport | None = None
        self._ended = asyncio.get_running_loop().create_future()
        self._sid = stream_sid
        self._tally = tally
        self._seq = 2  # `connected` has none, `start` was 1
        self._chunk = 0
        self._next = time.monotonic()
        self._queue: deque[int | str] = deque()  # agent audio (bytes) and mark names
        self._utterance = ""  # of the latest mark played
        self._audible = False
        self._dry_since: float | None = None
        self._dry_utterance = ""
        self._gap: tuple[str, float] | None = None  # audio after a dry spell, awaiting its mark
        self.first_media: float | None = None
        self.last_media = 0.0
        self.playing_since: float | None = None
        self.clear_at: float | None = None
        self.closed = False

    @property
    def idle(self) -> bool:
        return not self._queue

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self._on_message(json.loads(frame.get_payload_as_bytes()))
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closed = True
        if not self._ended.done():
            self._ended.set_result(None)

    async def ended(self) -> None:
        """Until the server has closed the stream."""
        await asyncio.shield(self._ended)

    async def tick(self, payload: str) -> float:
        """Send one caller frame at its moment and play 20 ms of agent audio; the send time."""
        delay = self._next - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -FRAME_S:
            self._tally.late_ticks += 1
            self._tally.worst_tick_lateness_ms = max(
                self._tally.worst_tick_lateness_ms, -delay * 1000
            )
        self._next += FRAME_S
        self._seq += 1
        self._chunk += 1
        self.send(MEDIA % (self._seq, self._sid, self._chunk, self._chunk * 20, payload))
        sent = time.monotonic()
        self._play()
        return sent

    def send(self, text: str) -> None:
        """Send one frame, unless the stream is closed."""
        if not self.closed and self._transport is not None:
            self._transport.send(WSMsgType.TEXT, text.encode())

    def _play(self) -> None:
        need = FRAME_BYTES
        while self._queue:
            head = self._queue[0]
            if isinstance(head, str):
                self._queue.popleft()
                self._utterance = _utterance_of(head)
                self._echo(head)
                continue
            if not need:
                break
            take = min(head, need)
            need -= take
            if take == head:
                self._queue.popleft()
            else:
                self._queue[0] = head - take
        played = need < FRAME_BYTES
        if played:
            self.playing_since = self.playing_since or time.monotonic()
        else:
            self.playing_since = None
            if self._audible:
                self._dry_since, self._dry_utterance = time.monotonic(), self._utterance
        self._audible = played

    def _echo(self, name: str) -> None:
        self._seq += 1
        self.send(protocol.build_mark_echo(self._seq, self._sid, name))

    def _on_message(self, event: dict[str, Any]) -> None:
        now = time.monotonic()
        kind = event["event"]
        if kind == "media":
            self._queue.append(_decoded_size(event["media"]["payload"]))
            self.first_media = self.first_media or now
            self.last_media = now
            if self._dry_since is not None:
                self._gap = (self._dry_utterance, now - self._dry_since)
                self._dry_since = None
        elif kind == "mark":
            name = event["mark"]["name"]
            self._queue.append(name)
            if self._gap is not None and self._gap[0] == _utterance_of(name):
                self._tally.gaps += 1
                self._tally.gap_ms += self._gap[1] * 1000
            self._gap = None
        elif kind == "clear":
            self.clear_at = now
            marks = [item for item in self._queue if isinstance(item, str)]
            self._queue.clear()
            self._dry_since = self._gap = None
            self._audible = False
            for name in marks:
                self._echo(name)

    async def say(self, frames: list[str]) -> float:
        """Send a phrase in real time; when its last frame went out."""
        sent = time.monotonic()
        for payload in frames:
            sent = await self.tick(payload)
        return sent

    async def await_reply(self, since: float, timeout_s: float) -> float | None:
        """Silence until the agent's first audio after `since`; its arrival time."""
        while not self.closed and time.monotonic() - since < timeout_s:
            if self.first_media is not None:
                return self.first_media
            await self.tick(SILENCE)
        return None

    async def await_quiet(self, quiet_s: float, timeout_s: float) -> None:
        """Silence until the agent has finished speaking."""
        deadline = time.monotonic() + timeout_s
        while not self.closed and time.monotonic() < deadline:
            await self.tick(SILENCE)
            if self.idle and time.monotonic() - self.last_media >= quiet_s:
                return

    async def await_playing(self, seconds: float, timeout_s: float) -> bool:
        """Silence until the agent's audio has been playing for `seconds`."""
        deadline = time.monotonic() + timeout_s
        while not self.closed and time.monotonic() < deadline:
            since = self.playing_since
            if since is not None and time.monotonic() - since >= seconds:
                return True
            await self.tick(SILENCE)
        return False

    def hang_up(self, call_sid: str, account_sid: str) -> None:
        self._seq += 1
        self.send(protocol.build_stop(self._seq, self._sid, call_sid, account_sid))
