"""The caller audio a recognition session was given but has not yet sent or decoded: bounded.

`push_audio` runs on the call's 20 ms path and must never block, and a recogniser that falls
behind (a stalled socket, or thousands of frames arriving at once after a network hiccup) must
neither grow memory without end nor fail the call. So a backlog holds at most `limit_ms` of
audio and drops what comes beyond it: the newest audio, so that what is queued stays whole and
in order. Dropping is logged once per episode (a WARNING as it starts, an INFO saying how much
was lost once more than a backlog's worth has been kept again), never per frame. Utterance ends
(markers) are never dropped.
"""

from __future__ import annotations

import asyncio
from collections import deque

from media.codec import SAMPLE_RATE
from voice_server.log import get_logger

log = get_logger(__name__)

_BYTES_PER_MS = SAMPLE_RATE // 1000  # 8 kHz μ-law: one byte per sample


class AudioBacklog:
    """μ-law audio and utterance-end markers, in order, for one worker to take."""

    def __init__(self, limit_ms: int, *, recogniser: str) -> None:
        if limit_ms <= 0:
            raise ValueError(f"limit_ms must be positive, got {limit_ms}")
        self._limit_bytes = limit_ms * _BYTES_PER_MS
        self._recogniser = recogniser
        self._items: deque[bytes | None] = deque()  # None: the end of an utterance
        self._queued_bytes = 0
        self._dropped_bytes = 0  # in the current episode of dropping
        self._kept_since_drop = 0
        self._ready = asyncio.Event()

    def put_audio(self, ulaw: bytes) -> None:
        """Queue audio, or drop it when the backlog is full."""
        if self._queued_bytes + len(ulaw) > self._limit_bytes:
            if not self._dropped_bytes:
                log.warning(
                    "recognition is behind: dropping caller audio until it catches up",
                    recogniser=self._recogniser,
                    backlog_ms=self._queued_bytes // _BYTES_PER_MS,
                )
            self._dropped_bytes += len(ulaw)
            self._kept_since_drop = 0
            return
        if self._dropped_bytes:
            self._end_episode(len(ulaw))
        self._items.append(ulaw)
        self._queued_bytes += len(ulaw)
        self._ready.set()

    def _end_episode(self, kept: int) -> None:
        """A burst comes in over many reads, each drained in between: the episode ends only
        once more than a whole backlog's worth of audio was kept without a drop, which a full
        backlog alone cannot hold."""
        self._kept_since_drop += kept
        if self._kept_since_drop > self._limit_bytes:
            dropped_ms = self._dropped_bytes // _BYTES_PER_MS
            log.info("recognition caught up", recogniser=self._recogniser, dropped_ms=dropped_ms)
            self._dropped_bytes = 0

    def put_end(self) -> None:
        """Mark the end of an utterance; never dropped."""
        self._items.append(None)
        self._ready.set()

    async def take(self) -> bytes | None:
        """Wait for work: all audio queued before the next utterance end, joined, or None for
        the utterance end itself."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        items = self._items
        if items[0] is None:
            items.popleft()
            return None
        pieces: list[bytes] = []
        while items and (piece := items[0]) is not None:
            pieces.append(piece)
            items.popleft()
        audio = b"".join(pieces)
        self._queued_bytes -= len(audio)
        return audio
