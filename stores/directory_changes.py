"""The change stream that keeps `stores.directory` fresh: every write to numbers or agents,
made by anyone, reduced to the collection it touched."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from stores import agents, phone_numbers
from stores.change_streams import ChangeStream, open_change_stream
from stores.database import Database

# The directory empties itself on any such write, so the event's resume token and collection
# are all it needs (one stream on the database for both collections).
_PIPELINE: list[dict[str, Any]] = [
    {"$match": {"ns.coll": {"$in": [phone_numbers.COLLECTION, agents.COLLECTION]}}},
    {"$project": {"operationType": 1, "ns": 1}},
]


@asynccontextmanager
async def open_directory_changes(db: Database) -> AsyncIterator[AsyncIterator[str]]:
    """The collection of each write to numbers or agents made after this returns (see
    `open_change_stream`: ChangeStreamsUnsupported on a standalone server)."""
    async with open_change_stream(db, None, _PIPELINE) as stream:
        yield _collections(stream)


async def _collections(stream: ChangeStream) -> AsyncIterator[str]:
    async for event in stream:
        yield str(event.get("ns", {}).get("coll", ""))
