"""The offline Whisper recogniser against real espeak-ng speech, as a phone line carries it."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from tqdm import tqdm

from media.codec import FRAME_BYTES, ULAW_SILENCE
from tests.voice_server.conftest import logged
from voice_server.call.speech_audio import render_ulaw
from voice_server.providers.base import ProviderError, SttOptions, SttResult, SttSession
from voice_server.providers.local import EspeakTextToSpeech
from voice_server.providers.local_whisper import STT_MODEL, WhisperSpeechToText

from .test_local_providers import heard, next_final, speech

OPTIONS = SttOptions(STT_MODEL)
SILENCE = ULAW_SILENCE * FRAME_BYTES


async def test_whisper_hears_espeak_speech_and_punctuates_it() -> None:
    ulaw = await render_ulaw(EspeakTextToSpeech(), speech("I want to speak to a manager."))

    async with WhisperSpeechToText().open_session(OPTIONS) as session:
        result = await heard(session, ulaw)

    assert result.final
    assert "want to speak to a manager" in result.text.lower(), result.text
    assert result.text.endswith("."), result.text
    assert session.punctuates


async def test_whisper_takes_no_multiprocessing_lock_for_its_progress_bars() -> None:
    """faster-whisper's hidden tqdm bar would otherwise create a multiprocessing semaphore, which
    a `serve --workers` worker leaves for its supervisor to warn about at shutdown."""
    async with WhisperSpeechToText().open_session(OPTIONS) as session:
        await heard(session, SILENCE * 25)

    assert isinstance(tqdm.get_lock(), type(threading.RLock()))


async def test_whisper_silence_gives_an_empty_final() -> None:
    async with WhisperSpeechToText().open_session(OPTIONS) as session:
        session.speech_started()
        for _ in range(100):
            session.push_audio(SILENCE, speech=False)
        session.speech_ended()

        result = await next_final(session)

    assert result == SttResult(text="", final=True)


async def test_whisper_speech_ended_without_speech_gives_an_empty_final() -> None:
    async with WhisperSpeechToText().open_session(OPTIONS) as session:
        session.speech_ended()
        result = await next_final(session)

    assert result == SttResult(text="", final=True)


async def push_paced(session: SttSession, frame_count: int) -> None:
    for n in range(frame_count):
        session.push_audio(SILENCE, speech=False)
        if n % 50 == 0:
            await asyncio.sleep(0)  # the worker takes what is queued, as on a live line


async def test_whisper_hears_30_s_of_one_utterance_and_says_it_dropped_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with WhisperSpeechToText().open_session(OPTIONS) as session:
        session.speech_started()
        await push_paced(session, 31 * 50)
        session.speech_ended()
        result = await next_final(session)

    assert result == SttResult(text="", final=True)
    assert [entry["window_s"] for entry in logged(caplog, "rest is not heard")] == [30]
    assert logged(caplog, "dropping caller audio") == []


async def test_whisper_without_its_model_is_a_provider_error(tmp_path: Path) -> None:
    for missing in (tmp_path / "absent", tmp_path):  # no directory; a directory without model
        with pytest.raises(ProviderError, match="cannot load") as raised:
            async with WhisperSpeechToText(missing).open_session(OPTIONS):
                pass
        assert raised.value.provider == STT_MODEL
        assert not raised.value.retryable


async def test_whisper_refuses_weights_other_than_the_vetted_file(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"\0" * 1024)

    with pytest.raises(ProviderError, match=r"not the tiny\.en file this server trusts"):
        async with WhisperSpeechToText(tmp_path).open_session(OPTIONS):
            pass
