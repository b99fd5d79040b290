"""Fixtures for the whole suite: one real SecantusDB per session, a fresh database per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.from_thread
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from stores import migrations
from stores.database import connect
from stores.embedded import EmbeddedDatabase

# anyio (under Starlette) imports each part of its API on first use. Under pytest each such
# import is also an assertion rewrite, since anyio ships a pytest plugin, and on Python 3.11 two
# threads parsing at once can fail with "AST constructor recursion depth mismatch" (seen when a
# FileResponse's first `anyio.open_file` met a worker thread's import). Load it all up front,
# its asyncio backend and thread portals included.
for _name in dir(anyio):
    getattr(anyio, _name)
anyio.run(anyio.sleep, 0)


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URI of one SecantusDB child process shared by every test of the session."""
    with EmbeddedDatabase(tmp_path_factory.mktemp("secantus") / "data") as server:
        yield server.uri


@pytest.fixture
async def database(mongo_uri: str) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    """A database of its own for one test, migrated up; dropped afterwards."""
    client = connect(mongo_uri)
    name = f"test_{uuid.uuid4().hex}"
    try:
        db = client[name]
        await migrations.upgrade(db)
        yield db
    finally:
        await client.drop_database(name)
        await client.close()
