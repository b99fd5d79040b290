"""SpeechEnd on real espeak-ng speech followed by silence or line noise: the caller's speech
ends where the rendered audio does, not where WebRTC's VAD stops calling frames speech."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from media.codec import FRAME_BYTES, pcm16_to_ulaw, ulaw_to_pcm16
from media.speech_end import MIN_SPEECH_DB, SpeechEnd, frame_level_db
from media.turns import Endpointer, EndpointingOptions
from media.vad import VoiceActivityDetector
from voice_server.simulation.caller_script import CallerScript, Say, render_steps

TEXTS = ("What are your opening hours?", "Can I book a table for two?", "Yes please.")
LEAD_S = 1.0  # the line before the caller speaks: the noise floor is learnt from it


@pytest.fixture(scope="module")
def spoken() -> dict[str, bytes]:
    """Each text as espeak-ng says it, trimmed to its first and last audible frame (μ-law)."""
    renders = asyncio.run(render_steps(CallerScript(turns=list(TEXTS))))
    return {step.text: audio for step, audio in renders.items() if isinstance(step, Say)}


def _on_the_line(ulaw: bytes, noise_rms: float) -> bytes:
    """The speech between `LEAD_S` and one second of the line, with its noise throughout."""
    speech = np.frombuffer(ulaw_to_pcm16(ulaw), dtype=np.int16).astype(np.float64)
    rng = np.random.default_rng(3)
    lead, tail = np.zeros(int(8000 * LEAD_S)), np.zeros(8000)
    line = np.concatenate([lead, speech, tail])
    line += rng.normal(0.0, noise_rms, len(line)) if noise_rms else 0.0
    return pcm16_to_ulaw(line.clip(-32768, 32767).astype(np.int16).tobytes())


def _ends(ulaw: bytes) -> tuple[float, float, float]:
    """(the VAD's last voiced frame, the energy end of speech, the last frame said to carry
    speech energy), seconds, as the call sees them."""
    vad, endpointer, speech_end = (
        VoiceActivityDetector(),
        Endpointer(EndpointingOptions()),
        SpeechEnd(),
    )
    last_with_energy = 0.0
    for i in range(len(ulaw) // FRAME_BYTES):
        pcm = ulaw_to_pcm16(ulaw[i * FRAME_BYTES : (i + 1) * FRAME_BYTES])
        now = (i + 1) * 0.020
        voiced = vad.is_speech(pcm)
        endpointer.process(voiced, now)
        if speech_end.process(pcm, voiced, now):
            last_with_energy = now
    return endpointer.last_speech_at, speech_end.at, last_with_energy


@pytest.mark.parametrize("noise_rms", [0.0, 30.0, 100.0, 300.0], ids=lambda r: f"noise{r:g}")
@pytest.mark.parametrize("text", TEXTS)
def test_speech_ends_where_the_rendered_speech_does(
    spoken: dict[str, bytes], text: str, noise_rms: float
) -> None:
    true_end = LEAD_S + len(spoken[text]) / 8000

    vad_end, energy_end, last_with_energy = _ends(_on_the_line(spoken[text], noise_rms))

    assert energy_end == pytest.approx(true_end, abs=0.0401)
    assert vad_end - energy_end >= 0.060, "the VAD's hangover is left out"
    assert last_with_energy == energy_end, "no frame of the hangover is called speech"


def test_the_floor_follows_the_quietest_recent_frames() -> None:
    speech_end = SpeechEnd()
    rng = np.random.default_rng(5)
    quiet = rng.normal(0.0, 30.0, 8000 * 3)
    noisy = rng.normal(0.0, 300.0, 8000 * 3)
    frames = np.concatenate([quiet, noisy]).astype(np.int16).tobytes()
    floors = []
    for i in range(len(frames) // 320):
        speech_end.process(frames[i * 320 : (i + 1) * 320], voiced=False, now=(i + 1) * 0.02)
        floors.append(speech_end.floor_db)
    quiet_db, noisy_db = frame_level_db(quiet[:160].astype(np.int16).tobytes()), -41.0
    assert floors[149] == pytest.approx(quiet_db, abs=2.0)  # 3 s of the quiet line
    assert floors[-1] == pytest.approx(noisy_db, abs=2.0)  # 2.5 s into the noisy one
    assert speech_end.at == 0.0, "no speech without voiced frames"


def test_a_quiet_caller_ends_at_the_vads_last_voiced_frame() -> None:
    """Voiced frames with no speech energy (under the margin over the floor): the VAD's end."""
    speech_end = SpeechEnd()
    frame = (np.full(160, 10, dtype=np.int16)).tobytes()  # about -70 dBFS
    assert frame_level_db(frame) < MIN_SPEECH_DB
    with_energy = [speech_end.process(frame, voiced=i >= 20, now=(i + 1) * 0.02) for i in range(50)]
    assert speech_end.at == pytest.approx(1.0)
    assert not any(with_energy)
