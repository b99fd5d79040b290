"""Opening a collection's change stream: MongoDB (and SecantusDB, which advertises a
single-node replica set) push every write as an event; a standalone `mongod` cannot, and
callers then poll (`ChangeStreamsUnsupported`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol, cast

from pymongo.errors import OperationFailure

from stores.database import Database


class ChangeStreamsUnsupported(Exception):
    """The server cannot open a change stream (not a replica set)."""


class ChangeStream(Protocol):
    def __aiter__(self) -> AsyncIterator[dict[str, Any]]: ...

    async def close(self) -> None: ...


class _Watchable(Protocol):
    async def watch(self, pipeline: list[dict[str, Any]]) -> ChangeStream: ...


@asynccontextmanager
async def open_change_stream(
    db: Database, collection: str, pipeline: list[dict[str, Any]]
) -> AsyncIterator[ChangeStream]:
    """The events `pipeline` passes, for writes made after this returns. PyMongo resumes the
    stream once by itself after a network error; other errors end it with PyMongoError."""
    try:
        # `Database` leaves `watch` out; PyMongo's collections have it.
        stream = await cast(_Watchable, db[collection]).watch(pipeline)
    except OperationFailure as error:
        raise ChangeStreamsUnsupported(str(error)) from error
    try:
        yield stream
    finally:
        await stream.close()
