"""The MongoDB client and the database seam every store is written against.

`connect` is the one place a client is made; `Database` and `Collection` are the small
structural types the stores need, so a PyMongo `AsyncDatabase` and a Motor
`AsyncIOMotorDatabase` both fit without the stores importing either.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Mapping, MutableMapping, Sequence
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from pymongo import AsyncMongoClient, MongoClient
from pymongo.errors import PyMongoError
from pymongo.results import DeleteResult, InsertOneResult, UpdateResult

Document = dict[str, Any]
IndexKeys = Sequence[tuple[str, int]]


class Cursor(Protocol):
    def to_list(self, length: int | None = None, /) -> Awaitable[list[Document]]: ...


class Collection(Protocol):
    """The collection methods the stores use (a subset of PyMongo's and Motor's)."""

    def insert_one(self, document: Document, /) -> Awaitable[InsertOneResult]: ...

    def find_one(self, filter: Any = None, /, *args: Any, **kwargs: Any) -> Awaitable[Any]: ...

    def find(self, *args: Any, **kwargs: Any) -> Cursor: ...

    def update_one(
        self, filter: Mapping[str, Any], update: Mapping[str, Any], /, *, upsert: bool = ...
    ) -> Awaitable[UpdateResult]: ...

    def update_many(
        self, filter: Mapping[str, Any], update: Mapping[str, Any], /
    ) -> Awaitable[UpdateResult]: ...

    def find_one_and_update(
        self,
        filter: Mapping[str, Any],
        update: Mapping[str, Any],
        /,
        *,
        projection: Mapping[str, Any] = ...,
        upsert: bool = ...,
        sort: Sequence[tuple[str, int]] = ...,
        return_document: bool = ...,
    ) -> Awaitable[Any]: ...

    def delete_one(self, filter: Mapping[str, Any], /) -> Awaitable[DeleteResult]: ...

    def create_index(
        self,
        keys: IndexKeys,
        /,
        *,
        name: str,
        unique: bool = ...,
        partialFilterExpression: Mapping[str, Any] = ...,
    ) -> Awaitable[str]: ...

    def drop_index(self, index_or_name: str, /) -> Awaitable[None]: ...

    def index_information(self) -> Awaitable[MutableMapping[str, Any]]: ...


class Database(Protocol):
    """A database handle: PyMongo's `AsyncDatabase` or Motor's `AsyncIOMotorDatabase`."""

    def __getitem__(self, name: str, /) -> Collection: ...


def connect(
    uri: str, *, app_name: str = "voice-server", timeout_ms: int = 2000
) -> AsyncMongoClient[Document]:
    """Make the client. Dates come back timezone-aware (UTC) because of `tz_aware=True`.

    The client connects lazily. An operation that finds no server waits at most `timeout_ms`
    for one (finding it and opening a connection), so a database that is down is noticed within
    that. A database that holds its connections and answers nothing is noticed only by a
    caller that bounds its operations with `pymongo.timeout()` (the webhooks and a call's
    writes do): a socket timeout for every operation would also cut long legitimate ones
    (index builds, change streams). Close it with `await client.close()`.
    """
    return AsyncMongoClient(
        uri,
        tz_aware=True,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        appname=app_name,
    )


def database_name(uri: str, default: str = "voice_agent") -> str:
    """The database named in the URI path (`mongodb://host/NAME?…`), else `default`."""
    path = unquote(urlsplit(uri).path).lstrip("/")
    return path or default


class DatabaseUnreachable(Exception):
    """No MongoDB server answered at the URI in time; the message names the hosts, never the
    credentials."""


def check_reachable(uri: str, timeout_s: float = 3.0) -> None:
    """Ping the server at `uri`; raises DatabaseUnreachable after `timeout_s` without one.

    Synchronous: an async client closed while it is still connecting leaks that socket
    (PyMongo 4.20, PYTHON-5867), and this check is made before a command starts anything.
    """
    hosts = urlsplit(uri).netloc.rpartition("@")[2]
    try:
        with MongoClient[Document](uri, serverSelectionTimeoutMS=int(timeout_s * 1000)) as client:
            client.admin.command("ping")
    except PyMongoError as error:
        # pymongo's text ends with timeouts and a topology description: the first part says it.
        reason = re.sub(r" \(configured timeouts:[^)]*\)", "", str(error)).split(", Timeout:")[0]
        raise DatabaseUnreachable(
            f"cannot reach MongoDB at {hosts} (MONGODB_URI) within {timeout_s:g} s: {reason}"
        ) from error
