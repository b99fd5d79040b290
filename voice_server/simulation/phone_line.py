"""The Twilio end of a simulated call's media stream, in real time.

Every 20 ms tick sends one caller frame and plays 20 ms of the agent's queued audio; a mark is
echoed when the audio queued before it has played; `clear` drops the queue and echoes every
pending mark at once. Tick times follow an absolute schedule, so a slow tick is caught up
instead of drifting.

An inbound call is one stream: its end ends the line. An outbound call's line outlives its
streams (a REST redirect stops one and opens the next on the same call): between streams the
ticks go on, and what the caller says then is heard by no one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from media import twilio as protocol
from media.codec import FRAME_BYTES, ULAW_SILENCE, ulaw_to_pcm16
from media.wav import wav_bytes

SILENT_FRAME = ULAW_SILENCE * FRAME_BYTES
LOUD = 1000  # a frame with a sample above this counts as sound, not silence


@dataclass
class Interruption:
    """Caller audio sent over the agent: when it began, and how the agent reacted."""

    onset: float  # monotonic time of the first loud frame sent
    onset_tick: int  # the tick that sent it
    clear_after_ms: float | None = None  # onset → Twilio `clear` received
    last_media_after_ms: float | None = None  # onset → the agent's last audio before the clear


@dataclass
class Turn:
    said: str
    reply_latency_ms: float | None = None  # caller's last speech frame → agent's first audio
    ticks: tuple[int, int] = (0, 0)  # the first tick of the caller's audio, and the one after


@dataclass
class CallResult:
    call_sid: str
    twiml: str
    connected: bool = False
    turns: list[Turn] = field(default_factory=list)
    interruptions: list[Interruption] = field(default_factory=list)
    marks_echoed: int = 0
    clears: int = 0
    server_hung_up: bool = False
    caller_audio: bytearray = field(default_factory=bytearray)  # μ-law, one frame per tick
    agent_audio: bytearray = field(default_factory=bytearray)
    played: bytearray = field(default_factory=bytearray)  # per tick: 1 if agent audio played

    def stop_after_ms(self, interruption: Interruption) -> float | None:
        """What the caller hears of a real interruption: from its first frame until the agent's
        audio stopped playing (None if it never stopped)."""
        stop = self.played.find(0, interruption.onset_tick)
        return None if stop < 0 else (stop - interruption.onset_tick) * 20.0

    def gap_after_ms(self, interruption: Interruption) -> float | None:
        """The agent audio missing after a sound that should not have interrupted it: the
        silence between its stopping and going on (0 when it never stopped; None when it never
        went on, i.e. the sound cut it off)."""
        stop = self.played.find(0, interruption.onset_tick)
        if stop < 0:
            return 0.0
        resumed = self.played.find(1, stop)
        return None if resumed < 0 else (resumed - stop) * 20.0

    def agent_audio_ms(self, ticks: tuple[int, int]) -> float:
        """How much of the agent's audio played during `ticks` (first, and one past the last)."""
        return self.played.count(1, *ticks) * 20.0

    def recording_wav(self) -> bytes:
        """Both sides as one 8 kHz stereo WAV: the caller on the left, the agent on the right."""
        caller = np.frombuffer(ulaw_to_pcm16(bytes(self.caller_audio)), dtype=np.int16)
        agent = np.frombuffer(ulaw_to_pcm16(bytes(self.agent_audio)), dtype=np.int16)
        length = max(len(caller), len(agent))
        stereo = np.zeros((length, 2), dtype=np.int16)
        stereo[: len(caller), 0], stereo[: len(agent), 1] = caller, agent
        return wav_bytes(stereo.tobytes(), 8000, channels=2)


def incoming_call(
    url: str, auth_token: str, *, call_sid: str, account_sid: str, caller: str, dialled: str
) -> tuple[dict[str, str], dict[str, str]]:
    """The form Twilio posts to the voice webhook at `url` for a ringing inbound call, and the
    headers that sign it."""
    form = {
        "CallSid": call_sid,
        "AccountSid": account_sid,
        "From": caller,
        "To": dialled,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }
    return form, signed(url, auth_token, form)


def signed(url: str, auth_token: str, form: Mapping[str, str]) -> dict[str, str]:
    """The header that signs a webhook request to `url` carrying `form`, as Twilio signs it
    (docs/twilio.md §5: HMAC-SHA1 of the URL and the sorted parameters, keyed by the token)."""
    return {"X-Twilio-Signature": RequestValidator(auth_token).compute_signature(url, form)}


def stream_from_twiml(twiml: str) -> tuple[str, dict[str, str]] | None:
    """The `<Connect><Stream>` URL and its `<Parameter>`s, or None when the call is not
    connected to a stream (an apology and a hang-up)."""
    stream = ET.fromstring(twiml).find("./Connect/Stream")
    if stream is None:
        return None
    parameters = {p.attrib["name"]: p.attrib["value"] for p in stream.findall("Parameter")}
    return stream.attrib["url"], parameters


def inbound_start(
    call_sid: str, account_sid: str, parameters: Mapping[str, str], stream_sid: str | None = None
) -> protocol.Start:
    """The `start` message of a `<Connect><Stream>`: the caller's track, μ-law at 8 kHz."""
    return protocol.Start(
        stream_sid=stream_sid or "MZ" + secrets.token_hex(16),
        call_sid=call_sid,
        account_sid=account_sid,
        tracks=("inbound",),
        encoding="audio/x-mulaw",
        sample_rate=8000,
        channels=1,
        custom_parameters=parameters,
    )


def garbage_frames(stream_sid: str, oversized_bytes: int) -> list[str | bytes]:
    """One of each kind of frame the server must drop (`caller_script.Garbage`)."""

    def media(payload: str) -> str:
        return json.dumps(
            {"event": "media", "streamSid": stream_sid, "media": {"payload": payload}}
        )

    return [
        '{"event": "media", "streamSid": "' + stream_sid,  # cut short: not JSON
        json.dumps({"event": "dance", "streamSid": stream_sid}),
        json.dumps({"event": "media", "streamSid": stream_sid, "media": {}}),
        media("%% not base64 %%"),
        media(base64.b64encode(ULAW_SILENCE * oversized_bytes).decode("ascii")),
        media("A" * (protocol.MAX_FRAME_CHARS + 4)),
        secrets.token_bytes(64) + b"\xff",  # a binary frame that is not UTF-8
    ]


def _loud(frame: bytes) -> bool:
    return bool(np.abs(np.frombuffer(ulaw_to_pcm16(frame), dtype=np.int16)).max() > LOUD)


class Player:
    """One caller's line. `closed` is set when the line is over: with `one_stream` (an inbound
    call), when its stream ends; otherwise when the owner sets it, streams coming and going in
    between (`begin(start, websocket)` puts a new one on the line)."""

    def __init__(
        self, websocket: ClientConnection | None, result: CallResult, *, one_stream: bool = True
    ) -> None:
        self._ws = websocket
        self._one_stream = one_stream
        self.result = result
        self.closed = asyncio.Event()
        self._sequence = self._chunk = 0
        self._start: protocol.Start | None = None
        self._queue: deque[bytes | str] = deque()  # agent audio and mark names, in order
        self._next_tick = 0.0
        self._last_media = 0.0  # monotonic time the latest agent media arrived
        self._first_media: float | None = None
        self._playing_since: float | None = None
        self._stopped = False

    def _seq(self) -> int:
        self._sequence += 1
        return self._sequence

    async def _send(self, message: str | bytes) -> None:
        if self.closed.is_set() or self._ws is None:
            return  # no stream on the line: no one hears it
        try:
            await self._ws.send(message)
        except ConnectionClosed:
            if self._one_stream:
                self.closed.set()

    async def begin(self, start: protocol.Start, websocket: ClientConnection | None = None) -> None:
        """Send `connected` and `start` on the stream (`websocket`, a new one on the line)."""
        if websocket is not None:
            self._ws = websocket
            self._sequence = self._chunk = 0  # each stream counts its own messages
            self._stopped = False
            self._queue.clear()
        self._start = start
        await self._send(protocol.build_connected())
        await self._send(protocol.build_start(self._seq(), start))
        self._next_tick = time.monotonic()

    @property
    def stopped(self) -> bool:
        """Whether the caller's side has ended the current stream (a `stop`, or a drop)."""
        return self._stopped

    @property
    def _stream_sid(self) -> str:
        assert self._start is not None, "begin() first"
        return self._start.stream_sid

    async def receive(self) -> None:
        """Take the agent's messages until the stream closes."""
        assert self._ws is not None, "begin() on a stream first"
        try:
            async for message in self._ws:
                await self._on_message(message if isinstance(message, str) else "")
        except ConnectionClosed:
            pass
        finally:
            self.result.server_hung_up = self._sequence > 0 and not self._stopped
            if self._one_stream:
                self.closed.set()
            else:  # the line goes on without a stream; what was queued for it is lost
                self._ws = None
                self._queue.clear()

    async def _on_message(self, message: str) -> None:
        event = protocol.parse_outbound(message)
        now = time.monotonic()
        if isinstance(event, protocol.OutboundMedia):
            self._queue.append(event.payload)
            self._last_media = now
            self._first_media = self._first_media or now
        elif isinstance(event, protocol.OutboundMark):
            self._queue.append(event.name)
        else:
            self.result.clears += 1
            self._note_clear(now)
            names = [item for item in self._queue if isinstance(item, str)]
            self._queue.clear()
            for name in names:
                await self._echo(name)

    def _note_clear(self, now: float) -> None:
        for interruption in self.result.interruptions:
            if interruption.clear_after_ms is None:
                interruption.clear_after_ms = round((now - interruption.onset) * 1000, 1)
                last = max(0.0, self._last_media - interruption.onset)
                interruption.last_media_after_ms = round(last * 1000, 1)

    async def tick(self, caller_frame: bytes) -> None:
        """One 20 ms step: send the caller's frame, play 20 ms of the agent's audio."""
        delay = self._next_tick - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self._next_tick += 0.020
        await self._send_media(caller_frame)
        self.result.caller_audio += caller_frame
        played = await self._play(FRAME_BYTES)
        self.result.agent_audio += played.ljust(FRAME_BYTES, ULAW_SILENCE)
        self.result.played.append(1 if played else 0)
        if played:
            self._playing_since = self._playing_since or time.monotonic()
        else:
            self._playing_since = None

    async def burst(self, frames: int, frame_bytes: int) -> None:
        """Send `frames` media messages of `frame_bytes` bytes of silence at once, without
        waiting for their ticks (nor playing the agent's audio meanwhile)."""
        payload = ULAW_SILENCE * frame_bytes
        for _ in range(frames):
            await self._send_media(payload)
        self._next_tick = max(self._next_tick, time.monotonic())  # no catching up afterwards

    async def _send_media(self, payload: bytes) -> None:
        self._chunk += 1
        await self._send(
            protocol.build_inbound_media(
                self._seq(), self._stream_sid, self._chunk, self._chunk * 20, payload
            )
        )

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
        self.result.marks_echoed += 1
        await self._send(protocol.build_mark_echo(self._seq(), self._stream_sid, name))

    async def send_audio(self, ulaw: bytes, *, overlapping: bool) -> float:
        """Send audio in real time; the time its last loud frame went out. With `overlapping`,
        sound sent while the agent is playing is recorded as an interruption."""
        last_loud = time.monotonic()
        noted = False
        for offset in range(0, len(ulaw), FRAME_BYTES):
            frame = ulaw[offset : offset + FRAME_BYTES].ljust(FRAME_BYTES, ULAW_SILENCE)
            loud = _loud(frame)
            if overlapping and loud and not noted and self._queue:
                tick = len(self.result.played)
                self.result.interruptions.append(Interruption(time.monotonic(), tick))
                noted = True
            await self.tick(frame)
            if loud:
                last_loud = time.monotonic()
        return last_loud

    async def press(self, digits: str) -> None:
        for digit in digits:
            await self._send(protocol.build_dtmf(self._seq(), self._stream_sid, digit))
            for _ in range(5):  # 100 ms between keys
                await self.tick(SILENT_FRAME)

    async def agent_playing(self, delay_ms: float, timeout_s: float) -> bool:
        """Send silence until the agent's audio has been playing for `delay_ms`."""
        deadline = time.monotonic() + timeout_s
        while not self.closed.is_set() and time.monotonic() < deadline:
            since = self._playing_since
            if since is not None and (time.monotonic() - since) * 1000 >= delay_ms:
                return True
            await self.tick(SILENT_FRAME)
        return False

    async def wait_for_agent(
        self, since: float, timeout_s: float, done_after_s: float
    ) -> float | None:
        """Send silence until the agent has answered and gone quiet; its first audio's time."""
        self._first_media = None
        deadline = since + timeout_s
        while not self.closed.is_set() and time.monotonic() < deadline:
            await self.tick(SILENT_FRAME)
            answered = self._first_media is not None and self._first_media >= since
            quiet = time.monotonic() - self._last_media >= done_after_s
            if answered and quiet and not self._queue:
                return self._first_media
        return None

    async def wait_for_hang_up(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.closed.is_set() and time.monotonic() < deadline:
            await self.tick(SILENT_FRAME)

    async def send_garbage(self, repeat: int, oversized_bytes: int) -> None:
        """Send the malformed frames of `garbage_frames`, `repeat` times over, at once."""
        frames = garbage_frames(self._stream_sid, oversized_bytes)
        for _ in range(repeat):
            for frame in frames:
                await self._send(frame)
        self._next_tick = max(self._next_tick, time.monotonic())

    async def drop(self, *, reset: bool) -> None:
        """End the call without a `stop`: cut the connection (`reset`: no closing handshake,
        as when a line dies) or close the WebSocket; return once the socket is closed."""
        self._stopped = True
        if self._ws is None:
            return
        if reset:
            self._ws.transport.abort()
        else:
            await self._ws.close()
        await self.closed.wait()

    async def stop(self) -> None:
        assert self._start is not None, "begin() first"
        self._stopped = True
        start = self._start
        await self._send(
            protocol.build_stop(self._seq(), start.stream_sid, start.call_sid, start.account_sid)
        )
