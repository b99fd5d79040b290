"""The `calls` collection's change stream, reduced to which call changed and how.

MongoDB (and SecantusDB, which advertises a single-node replica set) push every write as a
change event; a watcher re-reads only the calls it cares about. A server without change streams
(a standalone `mongod`) refuses to open one: `ChangeStreamsUnsupported`, and callers poll.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, cast

from pymongo.errors import OperationFailure

from stores.calls import COLLECTION
from stores.database import Database

# Only what a watcher needs: SecantusDB puts the whole transcript array in `updatedFields` of
# every append, so leave the document's fields out of the events (the resume token stays).
_PIPELINE: list[dict[str, Any]] = [
    {"$match": {"operationType": {"$in": ["insert", "update", "replace"]}}},
    {
        "$project": {
            "operationType": 1,
            "documentKey": 1,
            "fullDocument.userId": 1,
            "updateDescription.updatedFields.status": 1,
        }
    },
]


class ChangeStreamsUnsupported(Exception):
    """The server cannot open a change stream (not a replica set)."""


@dataclass(frozen=True)
class CallChange:
    """A write to one call. `membership`: it was created or its status changed, so lists of
    active calls may differ; `user_id` is known for created calls only."""

    call_id: str
    membership: bool
    user_id: str | None = None


class _Stream(Protocol):
    def __aiter__(self) -> AsyncIterator[dict[str, Any]]: ...

    async def close(self) -> None: ...


class _Watchable(Protocol):
    async def watch(self, pipeline: list[dict[str, Any]]) -> _Stream: ...


@asynccontextmanager
async def open_call_changes(db: Database) -> AsyncIterator[AsyncIterator[CallChange]]:
    """Changes to `calls` made after this returns. PyMongo resumes the stream once by itself
    after a network error; other errors end the iteration with PyMongoError."""
    try:
        # `Database` leaves `watch` out; PyMongo's and Motor's collections both have it.
        stream = await cast(_Watchable, db[COLLECTION]).watch(_PIPELINE)
    except OperationFailure as error:
        raise ChangeStreamsUnsupported(str(error)) from error
    try:
        yield _changes(stream)
    finally:
        await stream.close()


async def _changes(stream: _Stream) -> AsyncIterator[CallChange]:
    async for event in stream:
        updated = event.get("updateDescription", {}).get("updatedFields", {})
        inserted = event["operationType"] != "update"
        yield CallChange(
            call_id=str(event["documentKey"]["_id"]),
            membership=inserted or "status" in updated,
            user_id=event.get("fullDocument", {}).get("userId"),
        )
