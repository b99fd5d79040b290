"""The caller audio an offline recogniser decodes: each utterance the call's VAD delimits.

The call's VAD says speech started only once it is sure, so the frames just before its onset
are kept too (the preroll) and sent with the utterance. Frames go to the recogniser's backlog in
batches, one thread hop per batch rather than per 20 ms frame, and the end of each utterance is
marked there, so its worker sees audio and ends in order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator

from voice_server.providers.audio_backlog import AudioBacklog
from voice_server.providers.base import SttResult, SttResults

_PREROLL_FRAMES = 15  # 300 ms kept before the VAD's speech onset, which fires late by design
_BATCH_FRAMES = 10  # 200 ms a batch


class UtteranceAudio:
    """Frames in, as `SttSession` receives them; utterances out, into `backlog`."""

    def __init__(self, backlog: AudioBacklog) -> None:
        self._backlog = backlog
        self._preroll: deque[bytes] = deque(maxlen=_PREROLL_FRAMES)
        self._batch: list[bytes] = []
        self._in_utterance = False

    def push(self, ulaw: bytes) -> None:
        if not self._in_utterance:
            self._preroll.append(ulaw)
            return
        self._batch.append(ulaw)
        if len(self._batch) >= _BATCH_FRAMES:
            self._flush_batch()

    def started(self) -> None:
        if not self._in_utterance:
            self._in_utterance = True
            self._batch = list(self._preroll)
            self._preroll.clear()

    def ended(self) -> None:
        """Close the utterance; a final result is owed for it, even when it holds no audio."""
        self._flush_batch()
        self._in_utterance = False
        self._backlog.put_end()

    def _flush_batch(self) -> None:
        if self._batch:
            self._backlog.put_audio(b"".join(self._batch))
            self._batch = []


class UtteranceSession:
    """The part of an offline recogniser's session that takes the call's audio and hands out
    results: its worker (a subclass's loop) takes utterances from `_work` and puts finals on
    `_results`."""

    def __init__(self, backlog_ms: int, recogniser: str) -> None:
        self._work = AudioBacklog(backlog_ms, recogniser=recogniser)
        self._audio = UtteranceAudio(self._work)
        self._results = SttResults()

    def push_audio(self, ulaw: bytes, speech: bool) -> None:
        self._audio.push(ulaw)

    def speech_started(self) -> None:
        self._audio.started()

    def speech_ended(self) -> None:
        self._audio.ended()

    def results(self) -> AsyncIterator[SttResult]:
        return self._results.stream()
