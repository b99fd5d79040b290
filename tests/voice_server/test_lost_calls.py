"""The sweeper: active calls whose heartbeat stopped are finalised once, as of that heartbeat."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from stores.calls import CallCreate, CallStore
from stores.database import Database, connect
from stores.documents import utc_now
from tests.command_listener import StartedCommands
from tests.database_outage import DatabaseOutage
from tests.voice_server.conftest import logged
from voice_server.live_calls import LiveCalls, keep_alive, sweep

Db = AsyncDatabase[dict[str, Any]]


async def new_call(database: Db, call_sid: str, *, streamed: bool, age_s: float) -> None:
    calls = CallStore(database)
    started = utc_now() - timedelta(seconds=age_s + 30)
    await calls.create(
        CallCreate(
            call_sid=call_sid,
            from_number="+15550100199",
            to_number="+15550100100",
            agent_id="a" * 24,
            userId="alice",
            session_id=call_sid,
            start_time=started,
        )
    )
    if streamed:
        assert await calls.claim_stream(call_sid, "MZ" + call_sid[2:])
    # Its last heartbeat, `age_s` ago.
    heartbeat = utc_now() - timedelta(seconds=age_s)
    await database["calls"].update_one(
        {"call_sid": call_sid}, {"$set": {"heartbeat_at": heartbeat}}
    )


async def test_calls_whose_heartbeat_stopped_are_finalised_as_of_it(database: Db) -> None:
    calls = CallStore(database)
    await new_call(database, "CA" + "1" * 32, streamed=True, age_s=120)
    await new_call(database, "CA" + "2" * 32, streamed=False, age_s=120)
    await new_call(database, "CA" + "3" * 32, streamed=True, age_s=5)  # alive

    assert await sweep(calls, lost_after_s=60) == 2

    lost, unstarted, alive = [await calls.get(f"CA{d * 32}") for d in "123"]
    assert None not in (lost, unstarted, alive)
    assert lost is not None
    assert unstarted is not None
    assert alive is not None
    assert (lost.status, lost.end_reason) == ("completed", "server-lost")
    assert lost.end_time == lost.heartbeat_at, "it ended when its server last saw it alive"
    assert lost.end_time is not None
    assert lost.duration_seconds == (lost.end_time - lost.start_time).total_seconds()
    assert (unstarted.status, unstarted.end_reason) == ("completed", "no-media-stream")
    assert alive.status == "active"


async def test_many_sweepers_end_each_lost_call_once(database: Db) -> None:
    for n in range(5):
        await new_call(database, f"CA{n:032d}", streamed=True, age_s=120)

    ended = await asyncio.gather(*(sweep(CallStore(database), 60) for _ in range(4)))

    assert sum(ended) == 5


async def test_a_heartbeat_keeps_a_call_from_the_sweeper(database: Db) -> None:
    calls = CallStore(database)
    await new_call(database, "CA" + "4" * 32, streamed=True, age_s=120)
    await calls.heartbeat(["CA" + "4" * 32])

    assert await sweep(calls, lost_after_s=60) == 0


class HeartbeatWrites(StartedCommands):
    """The calls each heartbeat write marks, in the order they are sent; `repeated` is set once
    a write marks a call marked before."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.repeated = asyncio.Event()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name != "update" or event.command["update"] != "calls":
            return
        for update in event.command["updates"]:
            if "$in" in (marked := update["q"]["call_sid"]):
                seen = {sid for batch in self.batches for sid in batch}
                if seen & set(marked["$in"]):
                    self.repeated.set()
                self.batches.append(list(marked["$in"]))


class Running:
    def shut_down(self, *, goodbye: bool) -> None:
        raise AssertionError("the heartbeat never ends a call")


async def test_live_calls_are_marked_alive_in_small_batches_each_once_a_round(
    mongo_uri: str, database: Db
) -> None:
    writes = HeartbeatWrites()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_uri, tz_aware=True, event_listeners=[writes]
    )
    live = LiveCalls()
    call_sids = [f"CA{n:032x}" for n in range(60)]
    for call_sid in call_sids:
        live.add(call_sid, Running())
    calls = CallStore(client[database.name])
    beating = asyncio.create_task(keep_alive(live, calls, every_s=0.3, lost_after_s=60))
    try:
        async with asyncio.timeout(10):
            await writes.repeated.wait()  # a second round has begun
    finally:
        beating.cancel()
        await client.close()

    first_round = writes.batches[:-1]
    assert sorted(sid for batch in first_round for sid in batch) == call_sids  # each once
    assert max(len(batch) for batch in first_round) <= len(call_sids) // 4


class CountedCalls(CallStore):
    """The store, counting its heartbeat writes that failed and those that went through."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.failed = self.succeeded = 0
        self._counted = asyncio.Event()

    async def heartbeat(self, call_sids: list[str]) -> None:
        if not call_sids:  # no write
            return
        try:
            await super().heartbeat(call_sids)
        except PyMongoError:
            self.failed += 1
            raise
        else:
            self.succeeded += 1
        finally:
            self._counted.set()

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(20):
            while not condition():
                self._counted.clear()
                await self._counted.wait()


@pytest.mark.parametrize("outage", ["stopped"], indirect=True)
async def test_an_outage_is_logged_once_as_it_begins_and_once_as_it_ends(
    outage: DatabaseOutage, caplog: pytest.LogCaptureFixture
) -> None:
    client = connect(outage.uri, timeout_ms=100)
    calls = CountedCalls(client[outage.db.name])
    live = LiveCalls()
    for n in range(30):
        live.add(f"CA{n:032x}", Running())
    await outage.begin()
    beating = asyncio.create_task(keep_alive(live, calls, every_s=0.3, lost_after_s=600))
    try:
        await calls.until(lambda: calls.failed >= 3)
        await outage.end()
        await calls.until(lambda: calls.succeeded >= 1)
    finally:
        beating.cancel()
        await client.close()

    assert len(logged(caplog, "call heartbeat or sweep failed")) == 1
    assert len(logged(caplog, "call heartbeat and sweep work again")) == 1
