"""The call's transcript writer: entries reach `calls` in order, as soon as they are final.

The audio path only queues an entry (never awaits the database). One task per call appends
them one at a time. While the database is unreachable the queue waits in memory and the entry
at its head is retried with backoff for as long as the call lasts, so entries are neither lost
nor reordered; each append is idempotent (`TranscriptEntry.entry_id`), so a retry after a
write whose reply was lost does not store the entry twice. An entry the database refuses (not
a transient error, `voice_server.retry.transient`) is logged, and the next one goes on.

Two bounds keep an outage from costing the process without end, and each entry they give up
on is logged in full (one ERROR line naming why), so it can still be recovered from the logs:
- at most `MAX_UNWRITTEN` entries wait; one more is dropped, not queued;
- once the call has ended (`close()`), what is still queued is written within
  `FINISH_WINDOW_S`, and what is not written by then is given up.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from typing import Any, Protocol

from pymongo.errors import PyMongoError
from tenacity import RetryCallState

from stores.calls import CallNotFound, TranscriptEntry
from voice_server.log import get_logger
from voice_server.metrics import TRANSCRIPT_LOSSES
from voice_server.retry import retry_database

log = get_logger(__name__)

# A turn gives two entries and takes seconds, so this holds minutes of talk: far more than an
# outage the call itself survives, and little memory for each call.
MAX_UNWRITTEN = 200
FINISH_WINDOW_S = 60.0


def new_entry(role: str, text: str, **fields: Any) -> TranscriptEntry:
    """A transcript entry said now; `fields` are TranscriptEntry's optional ones."""
    return TranscriptEntry.model_validate(
        {"role": role, "text": text, "timestamp": datetime.now(UTC), **fields}
    )


class TranscriptStore(Protocol):
    """Where a call's transcript is kept: `CallStore` (the only method a call needs of it)."""

    async def append_transcript(self, call_sid: str, entry: TranscriptEntry) -> None: ...


class TranscriptWriter:
    def __init__(
        self,
        calls: TranscriptStore,
        call_sid: str,
        *,
        max_unwritten: int = MAX_UNWRITTEN,
        finish_window_s: float = FINISH_WINDOW_S,
    ) -> None:
        self._calls = calls
        self._call_sid = call_sid
        self._max_unwritten = max_unwritten
        self._finish_window_s = finish_window_s
        self._queue: asyncio.Queue[TranscriptEntry | None] = asyncio.Queue()
        self._give_up_at = math.inf  # loop time; set when the call ends
        self._stopped = False

    def add(self, entry: TranscriptEntry) -> None:
        """Queue an entry; returns at once. An entry that finds `max_unwritten` waiting, or
        comes once `run()` was cancelled (the call failed), is logged in full instead."""
        if self._stopped:
            self._lost(entry, "the call ended before it was written")
        elif self._queue.qsize() >= self._max_unwritten:
            self._lost(
                entry,
                f"dropped: {self._max_unwritten} entries were already waiting for the database",
            )
        else:
            self._queue.put_nowait(entry)

    def close(self) -> None:
        """No more entries: `run()` returns once the queued ones are written, or given up
        `finish_window_s` from now."""
        self._give_up_at = asyncio.get_running_loop().time() + self._finish_window_s
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
        if self._given_up():
            self._lost(entry, self._late())
            return
        try:
            await retry_database(
                "transcript append",
                lambda: self._calls.append_transcript(self._call_sid, entry),
                self._given_up,
            )
        except PyMongoError as error:  # refused, or still unreachable once given up
            self._lost(entry, f"{self._late()}: {error}" if self._given_up() else str(error))
        except CallNotFound:  # deleted under the call: the call goes on, its words are logged
            self._lost(entry, "the call's record no longer exists")

    def _given_up(self, _: RetryCallState | None = None) -> bool:
        return asyncio.get_running_loop().time() >= self._give_up_at

    def _late(self) -> str:
        return f"not stored within {self._finish_window_s:g} s of the call's end"

    def _lost(self, entry: TranscriptEntry, error: str) -> None:
        TRANSCRIPT_LOSSES.inc()
        log.error(
            "transcript entry could not be stored",
            error=error,
            entry=entry.model_dump(mode="json", exclude_none=True),
        )
