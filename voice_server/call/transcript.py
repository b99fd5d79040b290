"""The call's transcript writer: entries reach `calls` in order, as soon as they are final.

The audio path only queues an entry (never awaits the database). One task per call appends
them one at a time; a database hiccup delays the queue and is retried with backoff, so entries
are neither lost nor reordered. If the database stays down past the retry window, the entry is
logged in full, so it can still be recovered from the logs.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Protocol

from pymongo.errors import PyMongoError

from stores.calls import TranscriptEntry
from voice_server.log import get_logger
from voice_server.metrics import TRANSCRIPT_LOSSES
from voice_server.retry import database_retrying

log = get_logger(__name__)


def new_entry(role: str, text: str, **fields: Any) -> TranscriptEntry:
    """A transcript entry said now; `fields` are TranscriptEntry's optional ones."""
    return TranscriptEntry.model_validate(
        {"role": role, "text": text, "timestamp": datetime.now(UTC), **fields}
    )


class TranscriptStore(Protocol):
    """Where a call's transcript is kept: `CallStore` (the only method a call needs of it)."""

    async def append_transcript(self, call_sid: str, entry: TranscriptEntry) -> None: ...


class TranscriptWriter:
    def __init__(self, calls: TranscriptStore, call_sid: str, retry_window_s: float = 60.0) -> None:
        self._calls = calls
        self._call_sid = call_sid
        self._retry_window_s = retry_window_s
        self._queue: asyncio.Queue[TranscriptEntry | None] = asyncio.Queue()
        self._stopped = False

    def add(self, entry: TranscriptEntry) -> None:
        """Queue an entry; returns at once. Once `run()` was cancelled (the call failed), an
        entry is logged in full instead, as the queued ones were."""
        if self._stopped:
            self._lost(entry, "the call ended before it was written")
            return
        self._queue.put_nowait(entry)

    def close(self) -> None:
        """No more entries: `run()` returns once the queued ones are written."""
        self._queue.put_nowait(None)

    async def run(self) -> None:
        entry: TranscriptEntry | None = None
        try:
            while (entry := await self._queue.get()) is not None:
                await self._append(entry)
                entry = None
        except asyncio.CancelledError:
            # The call failed before its entries were written: keep them in the logs (the one
            # being written too, which may or may not have reached the database).
            self._stopped = True
            if entry is not None:
                self._lost(entry, "the call ended while it was being written")
            while not self._queue.empty():
                if (unwritten := self._queue.get_nowait()) is not None:
                    self._lost(unwritten, "the call ended before it was written")
            raise

    async def _append(self, entry: TranscriptEntry) -> None:
        try:
            async for attempt in database_retrying("transcript append", self._retry_window_s):
                with attempt:
                    await self._calls.append_transcript(self._call_sid, entry)
        except PyMongoError as error:
            self._lost(entry, str(error))

    def _lost(self, entry: TranscriptEntry, error: str) -> None:
        TRANSCRIPT_LOSSES.inc()
        log.error(
            "transcript entry could not be stored",
            error=error,
            entry=entry.model_dump(mode="json", exclude_none=True),
        )
