"""The `calls` collection's change stream, reduced to which call changed and how: a watcher
re-reads only the calls it cares about. Without change streams (`ChangeStreamsUnsupported`),
callers poll.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from stores.calls import COLLECTION
from stores.change_streams import ChangeStream, open_change_stream
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


@dataclass(frozen=True)
class CallChange:
    """A write to one call. `membership`: it was created or its status changed, so lists of
    active calls may differ; `user_id` is known for created calls only."""

    call_id: str
    membership: bool
    user_id: str | None = None


@asynccontextmanager
async def open_call_changes(db: Database) -> AsyncIterator[AsyncIterator[CallChange]]:
    """Changes to `calls` made after this returns (see `open_change_stream`)."""
    async with open_change_stream(db, COLLECTION, _PIPELINE) as stream:
        yield _changes(stream)


async def _changes(stream: ChangeStream) -> AsyncIterator[CallChange]:
    async for event in stream:
        updated = event.get("updateDescription", {}).get("updatedFields", {})
        inserted = event["operationType"] != "update"
        yield CallChange(
            call_id=str(event["documentKey"]["_id"]),
            membership=inserted or "status" in updated,
            user_id=event.get("fullDocument", {}).get("userId"),
        )
