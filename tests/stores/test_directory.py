"""The directory: what it keeps, for how long, and how every write to numbers and agents
empties it (the stores' own at once, anyone's through the change stream)."""

from __future__ import annotations

import asyncio
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from stores.agents import AgentStore, AgentUpdate
from stores.directory import Directory
from stores.directory_changes import open_directory_changes
from stores.phone_numbers import PhoneNumberStore, PhoneNumberUpdate
from tests.stores.factories import BOX, agent, call, phone_number

Db = AsyncDatabase[dict[str, Any]]
NUMBER = "+15551234567"
KEY = ("number", NUMBER)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def followed(clock: Clock | None = None) -> Directory:
    directory = Directory(unfollowed_max_age_s=1.0, clock=clock or Clock())
    directory.set_followed(True)  # as if a change stream were open: only writes empty it
    return directory


async def read(value: str) -> str | None:
    return value


async def test_a_followed_directory_keeps_an_entry_until_a_write_empties_it() -> None:
    clock = Clock()
    directory = followed(clock)
    assert await directory.through(KEY, str, lambda: read("first")) == "first"
    clock.now += 3600
    assert await directory.through(KEY, str, lambda: read("second")) == "first"

    directory.forget()

    assert await directory.through(KEY, str, lambda: read("second")) == "second"


async def test_without_a_change_stream_an_entry_is_trusted_for_the_short_time_only() -> None:
    clock = Clock()
    directory = Directory(unfollowed_max_age_s=1.0, clock=clock)
    assert await directory.through(KEY, str, lambda: read("first")) == "first"
    clock.now += 0.9
    assert directory.cached(KEY, str) == "first"
    clock.now += 0.1
    assert directory.cached(KEY, str) is None


async def test_a_stream_that_closes_or_opens_again_starts_from_empty() -> None:
    clock = Clock()
    directory = followed(clock)
    await directory.through(KEY, str, lambda: read("kept while followed"))

    directory.set_followed(False)  # writes may now go unseen until it reopens
    assert directory.cached(KEY, str) is None
    await directory.through(KEY, str, lambda: read("kept for a second"))
    directory.set_followed(True)  # it may have missed writes meanwhile

    assert directory.cached(KEY, str) is None
    assert directory.followed


async def test_a_read_that_a_write_overtook_is_not_kept() -> None:
    directory = followed()
    reading, written = asyncio.Event(), asyncio.Event()

    async def slow_read() -> str:
        reading.set()
        await written.wait()
        return "read before the write"

    through = asyncio.create_task(directory.through(KEY, str, slow_read))
    await reading.wait()
    directory.forget()  # the write lands while the read is under way
    written.set()

    assert await through == "read before the write"  # the caller gets what it read ...
    assert directory.cached(KEY, str) is None  # ... but the next one reads again


async def test_a_directory_with_no_max_age_keeps_nothing() -> None:
    directory = Directory(unfollowed_max_age_s=0)
    assert await directory.through(KEY, str, lambda: read("first")) == "first"
    assert await directory.through(KEY, str, lambda: read("second")) == "second"


async def test_the_stores_own_writes_are_seen_at_once(database: Db) -> None:
    directory = followed()
    numbers, agents = PhoneNumberStore(database, BOX, directory), AgentStore(database, directory)
    number = await numbers.create(phone_number(NUMBER))
    answering = await agents.create(agent(NUMBER))
    assert await numbers.find_registered(NUMBER) == number
    assert await agents.find_for_incoming_call(NUMBER) == answering
    assert await agents.get(answering.id) == answering

    await agents.update("user-1", answering.id, AgentUpdate(active=False))
    assert await agents.find_for_incoming_call(NUMBER) is None
    switched_off = await agents.get(answering.id)
    assert switched_off is not None
    assert switched_off.active is False

    await numbers.update("user-1", number.id, PhoneNumberUpdate(isActive=False))
    registered = await numbers.find_registered(NUMBER)
    assert registered is not None
    assert registered.isActive is False

    await numbers.delete("user-1", number.id)
    assert await numbers.find_registered(NUMBER) is None


async def test_a_miss_reads_through_every_time(database: Db) -> None:
    directory = followed()
    numbers = PhoneNumberStore(database, BOX, directory)
    assert await numbers.find_registered(NUMBER) is None
    # Registered by someone else (no write through this store, no change stream here).
    await PhoneNumberStore(database, BOX).create(phone_number(NUMBER))

    assert await numbers.find_registered(NUMBER) is not None


async def test_the_change_stream_names_each_write_to_numbers_and_agents_only(
    database: Db,
) -> None:
    async with open_directory_changes(database) as changes:
        await database["calls"].insert_one(call("CA-not-watched").model_dump())
        await PhoneNumberStore(database, BOX).create(phone_number(NUMBER))
        await database["agents"].insert_one(agent(NUMBER).model_dump())
        async with asyncio.timeout(5):
            seen = [await anext(changes), await anext(changes)]

    assert seen == ["registered_phone_numbers", "agents"]
