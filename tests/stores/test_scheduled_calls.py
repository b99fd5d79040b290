"""The scheduled-call worker's claim: due calls only, earliest first, each claimed once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from stores.scheduled_calls import NotPending, ScheduledCallCreate, ScheduledCallStore
from tests.stores.factories import START

Db = AsyncDatabase[dict[str, Any]]


def scheduled(minutes: int) -> ScheduledCallCreate:
    return ScheduledCallCreate(
        callType="normal",
        fromPhoneNumberId="0" * 24,
        toPhoneNumbers=["+15550001111"],
        scheduledDateTime=START + timedelta(minutes=minutes),
        userId="owner",
    )


async def test_claims_due_calls_earliest_first_once(database: Db) -> None:
    store = ScheduledCallStore(database)
    later = await store.create(scheduled(10))
    sooner = await store.create(scheduled(5))
    await store.create(scheduled(60))
    now = START + timedelta(minutes=30)
    first, second = await store.claim_due(now), await store.claim_due(now)
    assert first is not None
    assert second is not None
    assert [first.id, second.id] == [sooner.id, later.id]
    assert first.status == "in-progress"
    assert await store.claim_due(now) is None
    assert await store.finish(first.id, "completed") is True
    assert await store.finish(first.id, "failed") is False
    with pytest.raises(NotPending):
        await store.update("owner", first.id, scheduled(90), None)
    assert await store.update("someone-else", first.id, scheduled(90), None) is None
