"""Scheduled calls as their owner changes them, and the worker's claim: due calls only,
earliest first, each claimed once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from stores.scheduled_call_runs import ScheduledCallRuns
from stores.scheduled_calls import NotPending, ScheduledCallCreate, ScheduledCallStore
from tests.stores.factories import START

Db = AsyncDatabase[dict[str, Any]]
LEASE = timedelta(seconds=60)


def scheduled(minutes: int) -> ScheduledCallCreate:
    return ScheduledCallCreate(
        callType="normal",
        message="Your table is ready.",
        fromPhoneNumberId="0" * 24,
        toPhoneNumbers=["+15550001111"],
        scheduledDateTime=START + timedelta(minutes=minutes),
        userId="owner",
    )


async def test_claims_due_calls_earliest_first_once(database: Db) -> None:
    store, runs = ScheduledCallStore(database), ScheduledCallRuns(database)
    later = await store.create(scheduled(10))
    sooner = await store.create(scheduled(5))
    await store.create(scheduled(60))
    now = START + timedelta(minutes=30)
    first = await runs.claim_due(now, "worker-a", LEASE)
    second = await runs.claim_due(now, "worker-b", LEASE)
    assert first is not None
    assert second is not None
    assert [first.id, second.id] == [sooner.id, later.id]
    assert first.status == "in-progress"
    assert [d.to for d in first.destinations] == ["+15550001111"]
    assert await runs.claim_due(now, "worker-c", LEASE) is None
    with pytest.raises(NotPending):
        await store.update("owner", first.id, scheduled(90), None)
    assert await store.update("someone-else", first.id, scheduled(90), None) is None
