"""A caller simulator that does what Twilio does, for the demo, the tests and benchmarks.

It posts a signed incoming-call webhook, reads the TwiML for the stream URL and parameters, opens
the media stream, sends `connected` and `start`, then sends 20 ms μ-law frames at real-time pace
(speech synthesised with espeak-ng, silence in between). Agent audio is "played" at real time
too: a `mark` is echoed only once the audio queued before it has played, and `clear` drops the
queue and echoes every pending mark, as Twilio does. Both sides are recorded.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field

import aiohttp
import numpy as np
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from media import twilio as protocol
from media.codec import FRAME_BYTES, ULAW_SILENCE, ulaw_to_pcm16
from media.wav import wav_bytes
from voice_server.providers.base import TtsRequest
from voice_server.providers.local import TTS_MODEL, EspeakTextToSpeech
from voice_server.speech_audio import render_ulaw

SILENT_FRAME = ULAW_SILENCE * FRAME_BYTES


@dataclass(frozen=True)
class CallerScript:
    """What the caller says, one utterance per turn, each after the agent has finished."""

    turns: Sequence[str]
    voice: str = "en-us"
    reply_timeout_s: float = 20.0
    agent_done_after_s: float = 1.0  # the agent counts as finished after this much quiet


@dataclass(frozen=True)
class Line:
    """Who is calling whom, and where the server is."""

    base_url: str  # the server's public base URL, as in PUBLIC_BASE_URL
    auth_token: str
    caller: str
    dialled: str
    account_sid: str = "AC" + "0" * 32


@dataclass
class Turn:
    said: str
    reply_latency_ms: float | None = None  # caller's last speech frame → agent's first audio


@dataclass
class CallResult:
    call_sid: str
    twiml: str
    connected: bool = False
    turns: list[Turn] = field(default_factory=list)
    marks_echoed: int = 0
    clears: int = 0
    agent_audio_ms: float = 0.0
    caller_audio: bytearray = field(default_factory=bytearray)  # μ-law, one frame per tick
    agent_audio: bytearray = field(default_factory=bytearray)

    def recording_wav(self) -> bytes:
        """Both sides mixed into one 8 kHz mono WAV a person can listen to."""
        caller = np.frombuffer(ulaw_to_pcm16(bytes(self.caller_audio)), dtype=np.int16)
        agent = np.frombuffer(ulaw_to_pcm16(bytes(self.agent_audio)), dtype=np.int16)
        mixed = (caller.astype(np.int32) + agent.astype(np.int32)).clip(-32768, 32767)
        return wav_bytes(mixed.astype(np.int16).tobytes(), 8000)


def new_call_sid() -> str:
    return "CA" + secrets.token_hex(16)


async def place_call(
    line: Line,
    script: CallerScript,
    *,
    call_sid: str | None = None,
    on_event: Callable[[str], None] = lambda _: None,
) -> CallResult:
    """Make one call and return what happened; `on_event` hears progress lines."""
    call_sid = call_sid or new_call_sid()
    tts = EspeakTextToSpeech()
    speech = [
        await render_ulaw(tts, TtsRequest(model=TTS_MODEL, voice=script.voice, text=text))
        for text in script.turns
    ]
    twiml = await _post_webhook(line, call_sid)
    result = CallResult(call_sid=call_sid, twiml=twiml)
    stream = _stream_from_twiml(twiml)
    if stream is None:
        on_event(f"call not connected: {twiml}")
        return result
    url, parameters = stream
    async with connect(url, max_size=2**20) as websocket:
        result.connected = True
        player = _Player(websocket, result)
        start = protocol.Start(
            stream_sid="MZ" + secrets.token_hex(16),
            call_sid=call_sid,
            account_sid=line.account_sid,
            tracks=("inbound",),
            encoding="audio/x-mulaw",
            sample_rate=8000,
            channels=1,
            custom_parameters=parameters,
        )
        await player.begin(start)
        receiver = asyncio.create_task(player.receive())
        try:
            await _converse(player, script, speech, result, on_event)
            await player.stop()
            # Hang up, then wait for the server to finish the call and close the socket.
            await asyncio.wait_for(asyncio.shield(receiver), timeout=30)
        finally:
            receiver.cancel()
    return result


async def _post_webhook(line: Line, call_sid: str) -> str:
    url = f"{line.base_url}/twilio/voice"
    params = {
        "CallSid": call_sid,
        "AccountSid": line.account_sid,
        "From": line.caller,
        "To": line.dialled,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }
    signature = RequestValidator(line.auth_token).compute_signature(url, params)
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=params, headers={"X-Twilio-Signature": signature}) as response,
    ):
        body = await response.text()
        if response.status != 200:
            raise RuntimeError(f"voice webhook answered {response.status}: {body}")
        return body


def _stream_from_twiml(twiml: str) -> tuple[str, dict[str, str]] | None:
    stream = ET.fromstring(twiml).find("./Connect/Stream")
    if stream is None:
        return None
    parameters = {p.attrib["name"]: p.attrib["value"] for p in stream.findall("Parameter")}
    return stream.attrib["url"], parameters


async def _converse(
    player: _Player,
    script: CallerScript,
    speech: list[bytes],
    result: CallResult,
    on_event: Callable[[str], None],
) -> None:
    """Wait for the greeting, then say each utterance and wait for the agent's answer."""
    await player.wait_for_agent(script, since=time.monotonic(), on_event=on_event)
    for text, audio in zip(script.turns, speech, strict=True):
        on_event(f"caller says: {text}")
        turn = Turn(said=text)
        result.turns.append(turn)
        last_speech = await player.speak(audio)
        first_audio = await player.wait_for_agent(script, since=last_speech, on_event=on_event)
        if first_audio is not None:
            turn.reply_latency_ms = round((first_audio - last_speech) * 1000, 1)


class _Player:
    """The Twilio side of the socket: real-time frames out, agent audio played, marks echoed."""

    def __init__(self, websocket: ClientConnection, result: CallResult) -> None:
        self._ws = websocket
        self._result = result
        self._sequence = 0
        self._chunk = 0
        self._stream_sid = self._call_sid = self._account_sid = ""
        self._queue: deque[bytes | str] = deque()  # agent audio and mark names, in order
        self._next_tick = 0.0
        self.last_agent_audio = 0.0  # monotonic time the latest agent media arrived
        self.first_agent_audio: float | None = None

    def _seq(self) -> int:
        self._sequence += 1
        return self._sequence

    async def begin(self, start: protocol.Start) -> None:
        self._stream_sid = start.stream_sid
        self._call_sid, self._account_sid = start.call_sid, start.account_sid
        await self._ws.send(protocol.build_connected())
        await self._ws.send(protocol.build_start(self._seq(), start))
        self._next_tick = time.monotonic()

    async def receive(self) -> None:
        with suppress(ConnectionClosed):
            await self._receive()

    async def _receive(self) -> None:
        async for message in self._ws:
            event = protocol.parse_outbound(message if isinstance(message, str) else "")
            if isinstance(event, protocol.OutboundMedia):
                self._queue.append(event.payload)
                now = time.monotonic()
                self.last_agent_audio = now
                self.first_agent_audio = self.first_agent_audio or now
            elif isinstance(event, protocol.OutboundMark):
                self._queue.append(event.name)
            else:
                self._result.clears += 1
                names = [item for item in self._queue if isinstance(item, str)]
                self._queue.clear()
                for name in names:
                    await self._echo(name)

    async def tick(self, caller_frame: bytes) -> None:
        """One 20 ms step of the call: send the caller's frame, play 20 ms of agent audio."""
        delay = self._next_tick - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self._next_tick += 0.020
        self._chunk += 1
        timestamp = self._chunk * 20
        await self._ws.send(
            protocol.build_inbound_media(
                self._seq(), self._stream_sid, self._chunk, timestamp, caller_frame
            )
        )
        self._result.caller_audio += caller_frame
        played = await self._play(FRAME_BYTES)
        self._result.agent_audio += played + ULAW_SILENCE * (FRAME_BYTES - len(played))
        self._result.agent_audio_ms += len(played) / 8

    async def _play(self, wanted: int) -> bytes:
        played = bytearray()
        while self._queue:
            head = self._queue[0]
            if isinstance(head, str):
                self._queue.popleft()
                await self._echo(head)
                continue
            if len(played) == wanted:
                break
            take = head[: wanted - len(played)]
            played += take
            if len(take) == len(head):
                self._queue.popleft()
            else:
                self._queue[0] = head[len(take) :]
        return bytes(played)

    async def _echo(self, name: str) -> None:
        self._result.marks_echoed += 1
        await self._ws.send(protocol.build_mark_echo(self._seq(), self._stream_sid, name))

    async def speak(self, ulaw: bytes) -> float:
        """Send an utterance in real time; returns when its last frame was sent."""
        for offset in range(0, len(ulaw), FRAME_BYTES):
            await self.tick(ulaw[offset : offset + FRAME_BYTES].ljust(FRAME_BYTES, ULAW_SILENCE))
        return time.monotonic()

    async def wait_for_agent(
        self, script: CallerScript, since: float, on_event: Callable[[str], None]
    ) -> float | None:
        """Send silence until the agent has answered and gone quiet; its first audio's time."""
        self.first_agent_audio = None
        deadline = since + script.reply_timeout_s
        while time.monotonic() < deadline:
            await self.tick(SILENT_FRAME)
            answered = self.first_agent_audio is not None and self.first_agent_audio >= since
            quiet = time.monotonic() - self.last_agent_audio >= script.agent_done_after_s
            if answered and quiet and not self._queue:
                return self.first_agent_audio
        on_event("the agent did not answer in time")
        return None

    async def stop(self) -> None:
        stop = protocol.build_stop(self._seq(), self._stream_sid, self._call_sid, self._account_sid)
        await self._ws.send(stop)
