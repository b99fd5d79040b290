"""The directory's change stream: open before the app serves, and reopened after the database
went away, starting again from an empty directory (it may have missed writes meanwhile)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from stores.database import connect
from stores.directory import Directory
from tests.database_outage import DatabaseOutage
from voice_server.directory_feed import feeding

KEY = ("number", "+15551234567")


async def until(condition: Any, within_s: float) -> None:
    """Polls `condition()` (the feed's task changes it; nothing here can wait on that)."""
    async with asyncio.timeout(within_s):
        while not condition():  # noqa: ASYNC110 - no event to wait on, by design
            await asyncio.sleep(0.01)


async def keep(directory: Directory, value: str) -> None:
    """Have the directory hold `value`, as a read through it would."""

    async def read() -> str:
        return value

    assert await directory.through(KEY, str, read) == value
    assert directory.cached(KEY, str) == value


async def test_a_write_by_another_client_empties_the_directory(
    database: AsyncDatabase[dict[str, Any]], mongo_uri: str
) -> None:
    directory = Directory()
    async with feeding(directory, database):
        assert directory.followed  # open before the block: no write after it goes unseen
        await keep(directory, "kept")
        other = connect(mongo_uri)
        try:
            await other[database.name]["agents"].update_one({}, {"$set": {"x": 1}}, upsert=True)
            await until(lambda: directory.cached(KEY, str) is None, within_s=1.0)
        finally:
            await other.close()


@pytest.mark.parametrize("outage", ["stopped"], indirect=True)
async def test_a_broken_change_stream_is_reopened_and_starts_from_empty(
    outage: DatabaseOutage,
) -> None:
    directory = Directory()
    async with feeding(directory, outage.db, retry_s=0.05):
        await keep(directory, "kept while followed")

        await outage.begin()
        await until(lambda: not directory.followed, within_s=30)
        assert directory.cached(KEY, str) is None
        await outage.end()
        await until(lambda: directory.followed, within_s=30)

        assert directory.cached(KEY, str) is None
