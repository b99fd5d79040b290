"""The call log's shared watchers against the real database: one watcher, and one read per
change, however many follow a call; the same entries when the database is polled instead."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from stores.calls import Call, CallStore, TranscriptEntry
from tests.stores.factories import call
from voice_server.calllog.watchers import CallFeed, CallLog, CallLogOptions

FOLLOWERS = 20


class CountingCallStore(CallStore):
    """The real store, counting the reads the watchers make."""

    reads = 0

    async def get_since(self, call_id: str, since: int, user_id: str | None = None) -> Call | None:
        self.reads += 1
        return await super().get_since(call_id, since, user_id)


def said(text: str) -> TranscriptEntry:
    return TranscriptEntry(role="user", text=text, timestamp=datetime.now(UTC))


async def follow_to_the_end(call_log: CallLog, call_id: str, seen: list[list[str]]) -> None:
    async with call_log.follow_call(call_id) as feed:
        while not feed.ended:
            await feed.wait_past(len(feed.entries))
        seen.append([entry.text for entry in feed.entries])


async def play_call(db: AsyncDatabase[dict[str, Any]], options: CallLogOptions) -> list[list[str]]:
    """FOLLOWERS follow one call while three entries are appended and the call ends."""
    writer, reads = CallStore(db), CountingCallStore(db)
    created = await writer.create(call("CA1"))
    call_log = CallLog(db, reads, options)
    seen: list[list[str]] = []
    async with (
        call_log.running(),
        asyncio.timeout(20),
        asyncio.TaskGroup() as followers,
        call_log.follow_call(created.id) as first,
    ):
        for _ in range(FOLLOWERS):
            followers.create_task(follow_to_the_end(call_log, created.id, seen))
        for text in ("one", "two", "three"):
            # Counted before the append: the watcher may read the new entry before we wait.
            seen_before = len(first.entries)
            await writer.append_transcript("CA1", said(text))
            await first.wait_past(seen_before)
        await writer.finalize("CA1", ended_at=datetime.now(UTC), reason="stop")
    return seen


async def test_one_watcher_serves_every_follower_every_entry_and_the_end(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    seen = await play_call(database, CallLogOptions())
    assert seen == [["one", "two", "three"]] * FOLLOWERS


async def test_reads_do_not_grow_with_followers(database: AsyncDatabase[dict[str, Any]]) -> None:
    writer, reads = CallStore(database), CountingCallStore(database)
    created = await writer.create(call("CA1"))
    call_log = CallLog(database, reads, CallLogOptions())
    async with call_log.running(), asyncio.timeout(20):
        feeds: list[CallFeed] = []
        async with call_log.follow_call(created.id) as feed:
            for _ in range(FOLLOWERS):
                async with call_log.follow_call(created.id) as again:
                    feeds.append(again)
            assert all(other is feed for other in feeds)
            for text in ("one", "two"):
                seen_before = len(feed.entries)
                await writer.append_transcript("CA1", said(text))
                await feed.wait_past(seen_before)
    # The first read, one when the change stream opens (it may have missed a change), then
    # one per change: none of them per follower.
    assert reads.reads <= 4


async def test_without_change_streams_the_watcher_polls(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    options = CallLogOptions(change_streams=False, poll_s=0.05)
    seen = await play_call(database, options)
    assert seen == [["one", "two", "three"]] * FOLLOWERS
