"""TranscriptWriter over a real database: order kept, hiccups retried, close() drains."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import AutoReconnect, PyMongoError, WriteError

from stores.calls import CallStore, TranscriptEntry
from tests.stores.factories import START, call
from tests.voice_server.conftest import logged
from voice_server.call.transcript import TranscriptWriter

Db = AsyncDatabase[dict[str, Any]]


def entry(text: str, role: Any = "user") -> TranscriptEntry:
    return TranscriptEntry(role=role, text=text, timestamp=START)


CONNECTION_RESET = AutoReconnect("connection reset by peer")


class FlakyCallStore(CallStore):
    """The real store, except that appending `fail_text` fails `failures` times first."""

    def __init__(
        self,
        db: Db,
        fail_text: str,
        failures: int,
        error: PyMongoError = CONNECTION_RESET,
    ) -> None:
        super().__init__(db)
        self.fail_text = fail_text
        self.failures_left = failures
        self.error = error
        self.attempts: list[str] = []

    async def append_transcript(self, call_sid: str, entry: TranscriptEntry) -> None:
        self.attempts.append(entry.text)
        if entry.text == self.fail_text and self.failures_left > 0:
            self.failures_left -= 1
            raise self.error
        await super().append_transcript(call_sid, entry)


async def stored_texts(store: CallStore, call_sid: str = "CA1") -> list[str]:
    stored = await store.get(call_sid)
    assert stored is not None
    return [item.text for item in stored.transcript]


async def run_to_end(writer: TranscriptWriter) -> None:
    async with asyncio.timeout(30):
        await writer.run()


async def test_entries_arrive_in_order(database: Db) -> None:
    store = CallStore(database)
    await store.create(call("CA1"))
    writer = TranscriptWriter(store, "CA1")
    texts = [f"entry {n}" for n in range(20)]

    for n, text in enumerate(texts):
        writer.add(entry(text, role="user" if n % 2 else "assistant"))
    writer.close()
    await run_to_end(writer)

    stored = await store.get("CA1")
    assert stored is not None
    assert [item.text for item in stored.transcript] == texts
    assert [item.role for item in stored.transcript] == [
        "user" if n % 2 else "assistant" for n in range(20)
    ]


async def test_entries_added_while_running_arrive_in_order(database: Db) -> None:
    store = CallStore(database)
    await store.create(call("CA1"))
    writer = TranscriptWriter(store, "CA1")

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(run_to_end(writer))
        for n in range(5):
            writer.add(entry(f"entry {n}"))
            await asyncio.sleep(0)  # let the writer pick some up before the next arrives
        writer.close()

    assert await stored_texts(store) == [f"entry {n}" for n in range(5)]


async def test_store_hiccups_are_retried_without_loss_or_reordering(
    database: Db, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyCallStore(database, fail_text="second", failures=2)
    await store.create(call("CA1"))
    writer = TranscriptWriter(store, "CA1")

    for text in ["first", "second", "third"]:
        writer.add(entry(text))
    writer.close()
    with caplog.at_level(logging.WARNING):
        await run_to_end(writer)

    assert await stored_texts(store) == ["first", "second", "third"]
    assert store.attempts == ["first", "second", "second", "second", "third"]
    warnings = logged(caplog, "transcript append failed, retrying")
    assert [warning["attempt"] for warning in warnings] == [1, 2]
    assert all(warning["level"] == "warning" for warning in warnings)
    assert all("connection reset by peer" in warning["error"] for warning in warnings)


class LostReplyCallStore(CallStore):
    """The real store, except that the first append of `lose_text` is written but its reply is
    lost: the caller sees AutoReconnect although the entry is in the database."""

    def __init__(self, db: Db, lose_text: str) -> None:
        super().__init__(db)
        self.lose_text = lose_text
        self.lost = False

    async def append_transcript(self, call_sid: str, entry: TranscriptEntry) -> None:
        await super().append_transcript(call_sid, entry)
        if entry.text == self.lose_text and not self.lost:
            self.lost = True
            raise AutoReconnect("connection closed before the reply")


async def test_entry_whose_reply_was_lost_is_stored_once(database: Db) -> None:
    store = LostReplyCallStore(database, lose_text="second")
    await store.create(call("CA1"))
    writer = TranscriptWriter(store, "CA1")

    for text in ["first", "second", "third"]:
        writer.add(entry(text))
    writer.close()
    await run_to_end(writer)

    assert store.lost
    assert await stored_texts(store) == ["first", "second", "third"]


async def test_entries_are_logged_in_full_when_the_store_stays_down_after_the_call(
    database: Db, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyCallStore(database, fail_text="lost", failures=1_000)
    await store.create(call("CA1"))
    writer = TranscriptWriter(store, "CA1", finish_window_s=0.3)

    lost = entry("lost")
    entry_logged = lost.model_dump(mode="json", exclude_none=True)
    writer.add(lost)
    writer.add(entry("after it"))
    writer.close()
    await run_to_end(writer)

    assert await stored_texts(store) == []
    assert set(store.attempts) == {"lost"}, "nothing is tried once the window has passed"
    errors = logged(caplog, "transcript entry could not be stored")
    assert [error["entry"]["text"] for error in errors] == ["lost", "after it"]
    assert all(error["level"] == "error" for error in errors)
    assert all("not stored within 0.3 s of the call's end" in error["error"] for error in errors)
    assert errors[0]["entry"] == entry_logged | {
        "role": "user",
        "text": "lost",
        "timestamp": "2025-01-02T03:04:05.678000Z",
    }


async def test_an_entry_the_database_refuses_is_logged_and_the_next_ones_are_stored(
    database: Db, caplog: pytest.LogCaptureFixture
) -> None:
    refusal = WriteError("the document is too large", code=10334)
    store = FlakyCallStore(database, fail_text="refused", failures=1, error=refusal)
    await store.create(call("CA1"))
    writer = TranscriptWriter(store, "CA1")

    for text in ["first", "refused", "third"]:
        writer.add(entry(text))
    writer.close()
    await run_to_end(writer)

    assert await stored_texts(store) == ["first", "third"]
    assert store.attempts == ["first", "refused", "third"], "a refusal is not retried"
    (error,) = logged(caplog, "transcript entry could not be stored")
    assert (error["entry"]["text"], error["error"]) == ("refused", "the document is too large")


async def test_entries_of_a_call_whose_record_is_gone_are_logged_and_the_call_goes_on(
    database: Db, caplog: pytest.LogCaptureFixture
) -> None:
    store = CallStore(database)  # no record of CA1: deleted by hand, or never written
    writer = TranscriptWriter(store, "CA1")

    for text in ["first", "second"]:
        writer.add(entry(text))
    writer.close()
    await run_to_end(writer)

    lost = logged(caplog, "transcript entry could not be stored")
    assert [(e["entry"]["text"], e["error"]) for e in lost] == [
        ("first", "the call's record no longer exists"),
        ("second", "the call's record no longer exists"),
    ]


async def test_entries_past_the_bound_are_dropped_and_logged_in_full(
    database: Db, caplog: pytest.LogCaptureFixture
) -> None:
    store = CallStore(database)
    await store.create(call("CA1"))
    writer = TranscriptWriter(store, "CA1", max_unwritten=2)

    for text in ["one", "two", "three"]:
        writer.add(entry(text))  # nothing is written yet: the writer is not running
    writer.close()
    await run_to_end(writer)

    assert await stored_texts(store) == ["one", "two"]
    (error,) = logged(caplog, "transcript entry could not be stored")
    assert error["entry"]["text"] == "three"
    assert error["error"] == "dropped: 2 entries were already waiting for the database"


async def test_close_makes_run_return_after_draining(database: Db) -> None:
    store = CallStore(database)
    await store.create(call("CA1"))
    writer = TranscriptWriter(store, "CA1")
    writer.add(entry("one"))
    writer.add(entry("two"))
    writer.add(entry("three"))
    writer.close()

    await run_to_end(writer)

    assert await stored_texts(store) == ["one", "two", "three"]


class NotifyingCallStore(CallStore):
    """The real store, announcing each append once it is stored."""

    def __init__(self, db: Db) -> None:
        super().__init__(db)
        self.appended = asyncio.Event()

    async def append_transcript(self, call_sid: str, entry: TranscriptEntry) -> None:
        await super().append_transcript(call_sid, entry)
        self.appended.set()


async def test_run_waits_for_entries_until_closed(database: Db) -> None:
    store = NotifyingCallStore(database)
    await store.create(call("CA1"))
    writer = TranscriptWriter(store, "CA1")
    writer.add(entry("one"))

    running = asyncio.create_task(run_to_end(writer))
    async with asyncio.timeout(30):
        await store.appended.wait()
    assert await stored_texts(store) == ["one"]
    assert not running.done()

    writer.add(entry("two"))
    writer.close()
    await running

    assert await stored_texts(store) == ["one", "two"]


class BlockedCallStore(CallStore):
    """The real store, except that appends wait until the test lets them through."""

    def __init__(self, db: Db) -> None:
        super().__init__(db)
        self.started = asyncio.Event()

    async def append_transcript(self, call_sid: str, entry: TranscriptEntry) -> None:
        self.started.set()
        await asyncio.Event().wait()


async def test_entries_of_a_call_that_fails_are_kept_in_the_logs(
    database: Db, caplog: pytest.LogCaptureFixture
) -> None:
    store = BlockedCallStore(database)
    writer = TranscriptWriter(store, "CA1")
    for text in ["first", "second", "third"]:
        writer.add(entry(text))
    running = asyncio.create_task(writer.run())
    await store.started.wait()

    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running

    lost = logged(caplog, "transcript entry could not be stored")
    assert [record["entry"]["text"] for record in lost] == ["first", "second", "third"]
