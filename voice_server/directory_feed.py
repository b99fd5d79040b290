"""Keeping the app's directory (`stores.directory`) fresh for the app's lifetime.

The change stream on numbers and agents is opened before the app serves, so a write made
after start-up by anyone reaches this server's directory within a second. Where the database
has no change streams (a standalone `mongod`), that is logged once and the directory trusts
an entry for `UNFOLLOWED_MAX_AGE_S` only. A stream that fails is logged and reopened after
`retry_s`; meanwhile entries are trusted for the same short time, and the reopened stream
starts from an empty directory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from stores.change_streams import ChangeStreamsUnsupported
from stores.database import Database
from stores.directory import UNFOLLOWED_MAX_AGE_S, Directory
from stores.directory_changes import open_directory_changes
from voice_server.log import get_logger

log = get_logger(__name__)

RETRY_S = 2.0
# A database that holds the connection and says nothing must not keep the app from serving:
# it starts unfollowed (entries trusted for UNFOLLOWED_MAX_AGE_S) while the stream opens.
OPEN_WAIT_S = 5.0


@asynccontextmanager
async def feeding(
    directory: Directory, db: Database, retry_s: float = RETRY_S
) -> AsyncIterator[None]:
    """Follow the writes to numbers and agents while the block runs; the first attempt to
    open the change stream is over when the block starts (or OPEN_WAIT_S have passed)."""
    # The feed has a client of its own. On Python 3.11, PyMongo's async server selection can
    # fail ("cannot wait on un-acquired lock") or never return when many tasks wait on one
    # client's topology while the database is away; the feed, reopening its stream through an
    # outage, must not add to the webhooks' waiters.
    client: AsyncMongoClient[Any] | None = None
    own = db
    if isinstance(db, AsyncDatabase):
        client = db.client._duplicate()
        own = client[db.name]
    tried = asyncio.Event()
    feed = asyncio.create_task(_feed(directory, own, tried, retry_s), name="directory feed")
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(OPEN_WAIT_S):
                await tried.wait()
        yield
    finally:
        feed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feed
        if client is not None:
            await client.close()


async def _feed(directory: Directory, db: Database, tried: asyncio.Event, retry_s: float) -> None:
    while True:
        try:
            async with open_directory_changes(db) as changes:
                directory.set_followed(True)
                tried.set()
                async for _collection in changes:
                    directory.forget()
        except ChangeStreamsUnsupported as error:
            log.info(
                "no change streams on this database: the directory keeps numbers and agents "
                "for a short time only",
                max_age_s=UNFOLLOWED_MAX_AGE_S,
                reason=str(error),
            )
            return
        except PyMongoError as error:
            log.warning("directory change stream failed; reopening it", error=str(error))
        finally:
            directory.set_followed(False)
            tried.set()
        await asyncio.sleep(retry_s)
