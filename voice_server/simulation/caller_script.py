"""What a simulated caller does, step by step, and the audio each step sends.

A step happens at one of three moments: once the agent has answered and gone quiet
(`after-agent`, the default), while the agent is speaking (`during-agent`, `delay_ms` after its
audio started playing), or straight after the previous step (`now`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from media.codec import FRAME_BYTES, ULAW_SILENCE, pcm16_to_ulaw, ulaw_to_pcm16
from voice_server.call.speech_audio import render_ulaw
from voice_server.providers.base import TtsRequest
from voice_server.providers.local import TTS_MODEL, EspeakTextToSpeech

When = Literal["after-agent", "during-agent", "now"]


@dataclass(frozen=True)
class Say:
    text: str
    when: When = "after-agent"
    delay_ms: float = 0.0


@dataclass(frozen=True)
class Noise:
    """A burst of noise shaped like a cough."""

    ms: float = 250.0
    when: When = "during-agent"
    delay_ms: float = 0.0


@dataclass(frozen=True)
class Pause:
    ms: float
    when: When = "now"
    delay_ms: float = 0.0


@dataclass(frozen=True)
class Burst:
    """`frames` media messages of `frame_bytes` bytes of silence sent all at once, as a line
    delivers its backlog after a stall (Twilio's frames are 160 bytes; other sizes are odd)."""

    frames: int = 1
    frame_bytes: int = FRAME_BYTES
    when: When = "now"
    delay_ms: float = 0.0


@dataclass(frozen=True)
class Press:
    digits: str
    when: When = "after-agent"
    delay_ms: float = 0.0


@dataclass(frozen=True)
class HangUp:
    when: When = "after-agent"
    delay_ms: float = 0.0


@dataclass(frozen=True)
class AwaitHangUp:
    """Stay silent until the server ends the call (or `timeout_s` passes)."""

    timeout_s: float = 60.0
    when: When = "now"
    delay_ms: float = 0.0


@dataclass(frozen=True)
class Garbage:
    """Frames no Twilio would send, `repeat` times over: text that is not JSON, an unknown event,
    a media frame without its payload, a payload that is not base64, one of `oversized_bytes`
    bytes (over the 1 s a media frame may carry), a frame of over 64 KiB, and a binary frame
    that is not text. The server drops each one; 50 of them end the call."""

    repeat: int = 1
    oversized_bytes: int = 16_000
    when: When = "now"
    delay_ms: float = 0.0


@dataclass(frozen=True)
class Drop:
    """The line goes dead with no `stop`: the connection is cut under the WebSocket (`reset`),
    or the WebSocket is closed with its closing handshake but no `stop` before it."""

    reset: bool = True
    when: When = "now"
    delay_ms: float = 0.0


Step = Say | Noise | Pause | Burst | Press | HangUp | AwaitHangUp | Garbage | Drop


@dataclass(frozen=True)
class CallerScript:
    """The caller's steps; `turns` is shorthand for saying each text after the agent."""

    turns: Sequence[str] = ()
    steps: Sequence[Step] = field(default_factory=tuple)
    voice: str = "en-us"
    reply_timeout_s: float = 20.0
    agent_done_after_s: float = 1.0  # the agent counts as finished after this much quiet

    def all_steps(self) -> list[Step]:
        return [Say(text) for text in self.turns] + list(self.steps)


_spoken: dict[tuple[str, str], bytes] = {}  # (voice, text) → speech, rendered once per process


async def render_steps(script: CallerScript) -> dict[Step, bytes]:
    """The μ-law audio each step sends (speech from espeak-ng, noise, silence). A text is
    rendered once per process, so the same words are always the same bytes (a streamed render
    can differ in its last bits from one run to the next)."""
    tts = EspeakTextToSpeech()
    audio: dict[Step, bytes] = {}
    for step in script.all_steps():
        if isinstance(step, Say) and step not in audio:
            key = (script.voice, step.text)
            if key not in _spoken:
                request = TtsRequest(model=TTS_MODEL, voice=script.voice, text=step.text)
                _spoken[key] = trim_silence(await render_ulaw(tts, request))
            audio[step] = _spoken[key]
        elif isinstance(step, Noise):
            audio[step] = cough(step.ms)
        elif isinstance(step, Pause):
            audio[step] = ULAW_SILENCE * (int(step.ms / 20) * FRAME_BYTES)
    return audio


def trim_silence(ulaw: bytes, threshold: int = 300) -> bytes:
    """Drop the quiet frames a synthesiser puts before and after speech."""
    pcm = np.abs(np.frombuffer(ulaw_to_pcm16(ulaw), dtype=np.int16)).reshape(-1, FRAME_BYTES)
    loud = np.flatnonzero(pcm.max(axis=1) > threshold)
    if loud.size == 0:
        return b""
    return ulaw[loud[0] * FRAME_BYTES : (loud[-1] + 1) * FRAME_BYTES]


def cough(ms: float, seed: int = 7) -> bytes:
    """A loud, broadband burst with a fast attack and decay, in whole 20 ms frames."""
    samples = int(ms / 20) * 160
    rng = np.random.default_rng(seed)
    envelope = np.exp(-np.linspace(0.0, 4.0, samples)) * np.minimum(1.0, np.arange(samples) / 40)
    noise = rng.normal(0.0, 9000.0, samples) * envelope
    return pcm16_to_ulaw(noise.clip(-32768, 32767).astype(np.int16).tobytes())


def tone(hz: float, ms: float, level: float = 8000.0) -> bytes:
    """A steady sine tone (an answering machine's beep), in whole 20 ms frames."""
    samples = int(ms / 20) * 160
    wave = level * np.sin(2 * np.pi * hz * np.arange(samples) / 8000)
    return pcm16_to_ulaw(wave.astype(np.int16).tobytes())
