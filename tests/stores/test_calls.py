import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from stores.calls import CallLine, CallNotFound, CallStore, ForeignCall, TranscriptEntry
from tests.stores.factories import START, call

Db = AsyncDatabase[dict[str, Any]]


def entry(text: str, role: Any = "user", **fields: Any) -> TranscriptEntry:
    """An entry whose id follows from its text, so equal texts compare equal."""
    fields.setdefault("entry_id", f"id-{text}")
    return TranscriptEntry(role=role, text=text, timestamp=START, **fields)


async def test_create_is_idempotent_on_call_sid(database: Db) -> None:
    store = CallStore(database)
    first = await store.create(call("CA1"))
    assert (first.status, first.transcript, first.end_time) == ("active", [], None)
    assert first.start_time == START
    again = await store.create(call("CA1", session_id="retry"))
    assert again == first
    assert await database["calls"].count_documents({}) == 1


async def test_concurrent_creates_make_one_call(database: Db) -> None:
    store = CallStore(database)
    calls = await asyncio.gather(*(store.create(call("CA1")) for _ in range(10)))
    assert len({created.id for created in calls}) == 1
    assert await database["calls"].count_documents({}) == 1


@pytest.mark.parametrize(
    "other", [{"userId": "user-2"}, {"to_number": "+15551234568"}], ids=["owner", "number"]
)
async def test_a_call_sid_of_another_owner_or_number_is_not_handed_out(
    database: Db, other: dict[str, str]
) -> None:
    store = CallStore(database)
    first = await store.create(call("CA1"))
    with pytest.raises(ForeignCall):
        await store.create(call("CA1", session_id="theirs", **other))
    assert await store.get("CA1") == first


async def test_get_unknown(database: Db) -> None:
    assert await CallStore(database).get("CA-none") is None


async def test_concurrent_appends_keep_their_order(database: Db) -> None:
    store = CallStore(database)
    await store.create(call())
    # gather starts the coroutines in call order; the store must keep that order.
    await asyncio.gather(*(store.append_transcript("CA1", entry(f"line {i}")) for i in range(20)))
    stored = await store.get("CA1")
    assert stored is not None
    assert [item.text for item in stored.transcript] == [f"line {i}" for i in range(20)]
    assert stored.updated_at >= stored.created_at


async def test_entries_are_stored_without_empty_fields(database: Db) -> None:
    store = CallStore(database)
    await store.create(call())
    full = entry("hi", "assistant", interrupted=True, metrics={"ttfb_ms": 412.5}, source="tts")
    await store.append_transcript("CA1", entry("hello"))
    await store.append_transcript("CA1", full)
    document = await database["calls"].find_one({"call_sid": "CA1"})
    assert document is not None
    assert set(document["transcript"][0]) == {"role", "text", "timestamp", "entry_id"}
    stored = await store.get("CA1")
    assert stored is not None
    assert stored.transcript == [entry("hello"), full]


async def test_append_to_unknown_call_raises(database: Db) -> None:
    with pytest.raises(CallNotFound):
        await CallStore(database).append_transcript("CA-none", entry("hello"))


async def test_finalize_once_and_duration(database: Db) -> None:
    store = CallStore(database)
    await store.create(call())
    ended = START + timedelta(seconds=83, milliseconds=250)
    assert await store.finalize("CA1", ended_at=ended, reason="stop") is True
    assert await store.finalize("CA1", ended_at=ended, reason="status-callback") is False
    stored = await store.get("CA1")
    assert stored is not None
    assert (stored.status, stored.end_time, stored.end_reason) == ("completed", ended, "stop")
    assert stored.duration_seconds == pytest.approx(83.25)


async def test_naive_end_time_is_read_as_utc(database: Db) -> None:
    store = CallStore(database)
    await store.create(call())
    naive = datetime(2025, 1, 2, 3, 5, 5, 678000)  # naive on purpose
    assert await store.finalize("CA1", ended_at=naive, reason="stop")
    stored = await store.get("CA1")
    assert stored is not None
    assert stored.duration_seconds == pytest.approx(60.0)


async def test_concurrent_finalize_wins_once(database: Db) -> None:
    store = CallStore(database)
    await store.create(call())
    ended = START + timedelta(seconds=5)
    results = await asyncio.gather(
        *(store.finalize("CA1", ended_at=ended, reason=f"r{i}") for i in range(10))
    )
    assert results.count(True) == 1


async def test_finalize_for_a_line_ends_only_its_own_calls(database: Db) -> None:
    store = CallStore(database)
    first = await store.create(call("CA1"))
    # call(): user-1's, from +15557654321 to +15551234567
    for line in (CallLine("user-2", "+15551234567"), CallLine("user-1", "+15550000000")):
        with pytest.raises(ForeignCall):
            await store.finalize("CA1", ended_at=START, reason="x", line=line)
    assert await store.get("CA1") == first
    line = CallLine("user-1", "+15551234567")
    assert await store.finalize("CA1", ended_at=START, reason="twilio", line=line) is True
    with pytest.raises(ForeignCall):  # also once it has ended
        await store.finalize("CA1", ended_at=START, reason="x", line=CallLine("user-2", "+1"))


async def test_finalize_unknown_call(database: Db) -> None:
    assert await CallStore(database).finalize("CA-none", ended_at=START, reason="x") is False


async def test_transcript_since(database: Db) -> None:
    store = CallStore(database)
    await store.create(call())
    entries = [entry(f"line {i}") for i in range(5)]
    for line in entries:
        await store.append_transcript("CA1", line)
    assert await store.transcript_since("CA1", 0) == ("active", entries)
    assert await store.transcript_since("CA1", 3) == ("active", entries[3:])
    assert await store.transcript_since("CA1", 5) == ("active", [])
    assert await store.transcript_since("CA1", 50) == ("active", [])
    await store.finalize("CA1", ended_at=START, reason="stop")
    assert await store.transcript_since("CA1", 4) == ("completed", [entry("line 4")])
    assert await store.transcript_since("CA-none", 0) is None
    with pytest.raises(ValueError, match=">= 0"):
        await store.transcript_since("CA1", -1)


async def test_a_retried_append_is_stored_once(database: Db) -> None:
    calls = CallStore(database)
    await calls.create(call("CA-retry"))
    hello = TranscriptEntry(role="user", text="hello", timestamp=START)

    await calls.append_transcript("CA-retry", hello)
    await calls.append_transcript("CA-retry", hello)  # as after a lost reply

    stored = await calls.get("CA-retry")
    assert stored is not None
    assert [e.text for e in stored.transcript] == ["hello"]


async def test_a_call_has_one_media_stream(database: Db) -> None:
    store = CallStore(database)
    await store.create(call("CA-stream"))

    claims = await asyncio.gather(*(store.claim_stream("CA-stream", f"MZ{n}") for n in range(3)))

    assert claims.count(True) == 1
    stored = await store.get("CA-stream")
    assert stored is not None
    assert stored.stream_sid == f"MZ{claims.index(True)}"
    assert await store.claim_stream("CA-none", "MZ9") is False
