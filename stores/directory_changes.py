"""The change streams that keep `stores.directory` fresh: every write to numbers or agents,
made by anyone, reduced to the collection it touched."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from stores import agents, phone_numbers
from stores.change_streams import ChangeStream, open_change_stream
from stores.database import Database

# The directory empties itself on any such write, so the event's resume token is all it needs.
# One stream per collection, not one on the database: a server then passes over the writes to
# other collections (calls, messages: most of them) before it builds an event for them.
_PIPELINE: list[dict[str, Any]] = [{"$project": {"operationType": 1}}]


@asynccontextmanager
async def open_directory_changes(db: Database) -> AsyncIterator[AsyncIterator[str]]:
    """The collection of each write to numbers or agents made after this returns (see
    `open_change_stream`: ChangeStreamsUnsupported on a standalone server). The first error
    of either stream ends the iteration with it."""
    async with (
        open_change_stream(db, phone_numbers.COLLECTION, _PIPELINE) as numbers,
        open_change_stream(db, agents.COLLECTION, _PIPELINE) as agent_changes,
    ):
        yield _merged({phone_numbers.COLLECTION: numbers, agents.COLLECTION: agent_changes})


async def _merged(streams: Mapping[str, ChangeStream]) -> AsyncIterator[str]:
    """Each stream's events, named by their collection, in the order they arrive."""
    iterators = {name: aiter(stream) for name, stream in streams.items()}
    waiting = {asyncio.ensure_future(anext(it)): name for name, it in iterators.items()}
    try:
        while True:
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for next_event in done:
                name = waiting.pop(next_event)
                try:
                    next_event.result()
                except StopAsyncIteration:  # a dropped collection invalidates its stream
                    return
                yield name
                waiting[asyncio.ensure_future(anext(iterators[name]))] = name
    finally:
        for next_event in waiting:
            next_event.cancel()
