"""CallStore works on a Motor database too: the stores depend on a Protocol, not on PyMongo."""

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorDatabase

from stores import migrations
from stores.calls import CallStore, TranscriptEntry
from tests.stores.factories import START, call


@pytest.fixture
async def motor_database(mongo_uri: str) -> AsyncIterator[AsyncIOMotorDatabase[dict[str, Any]]]:
    client: AsyncIOMotorClient[dict[str, Any]] = AsyncIOMotorClient(mongo_uri, tz_aware=True)
    name = f"motor_{uuid.uuid4().hex}"
    try:
        db = client[name]
        await migrations.upgrade(db)
        yield db
    finally:
        await client.drop_database(name)
        client.close()


async def test_call_store_on_motor(motor_database: AsyncIOMotorDatabase[dict[str, Any]]) -> None:
    store = CallStore(motor_database)
    created = await store.create(call())
    assert await store.create(call()) == created
    said = TranscriptEntry(role="user", text="hello", timestamp=START)
    await store.append_transcript("CA1", said)
    assert await store.finalize("CA1", ended_at=START + timedelta(seconds=2), reason="stop")
    stored = await store.get("CA1")
    assert stored is not None
    assert (stored.status, stored.transcript, stored.duration_seconds) == ("completed", [said], 2.0)
