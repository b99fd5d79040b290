"""The worker's writes on scheduled calls: leases, fenced destination states, outcomes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from stores.scheduled_call_runs import Claim, Placed, ScheduledCallRuns
from stores.scheduled_calls import ScheduledCall, ScheduledCallCreate, ScheduledCallStore
from tests.stores.factories import START

Db = AsyncDatabase[dict[str, Any]]
LEASE = timedelta(seconds=60)
NOW = START + timedelta(minutes=1)
NUMBERS = ["+15550001111", "+15550002222"]


async def claimed(database: Db, worker: str = "worker-a") -> tuple[ScheduledCallRuns, Claim]:
    await ScheduledCallStore(database).create(
        ScheduledCallCreate(
            callType="normal",
            message="Your table is ready.",
            fromPhoneNumberId="0" * 24,
            toPhoneNumbers=NUMBERS,
            scheduledDateTime=START,
            userId="owner",
        )
    )
    runs = ScheduledCallRuns(database)
    call = await runs.claim_due(NOW, worker, LEASE)
    assert call is not None
    return runs, Claim(call.id, worker)


async def current(runs: ScheduledCallRuns, claim: Claim) -> ScheduledCall:
    call = await runs.get(claim.call_id)
    assert call is not None
    return call


async def test_a_lease_that_ran_out_is_taken_over_and_fences_the_old_worker(
    database: Db,
) -> None:
    runs, old = await claimed(database)
    assert await runs.dialling(old, 0)
    assert await runs.dialled(old, 0, "CA" + "1" * 32, attempts=1)

    assert await runs.claim_due(NOW + LEASE / 2, "worker-b", LEASE) is None, "lease still held"
    taken = await runs.claim_due(NOW + LEASE * 2, "worker-b", LEASE)
    assert taken is not None
    assert [d.state for d in taken.destinations] == ["dialled", "waiting"], "kept, not reset"

    assert not await runs.dialling(old, 1), "the old worker lost its claim"
    new = Claim(taken.id, "worker-b")
    assert not await runs.dialling(new, 0), "a dialled destination is never dialled again"
    assert await runs.dialling(new, 1)


async def test_the_call_completes_once_every_destination_is_done_and_one_was_reached(
    database: Db,
) -> None:
    runs, claim = await claimed(database)
    for index, sid in enumerate(["CA" + "1" * 32, "CA" + "2" * 32]):
        assert await runs.dialling(claim, index)
        assert await runs.dialled(claim, index, sid, attempts=1)
    await runs.release(claim)
    assert (await current(runs, claim)).status == "in-progress", "outcomes still to come"

    first, second = (
        Placed(claim.call_id, 0, "CA" + "1" * 32),
        Placed(claim.call_id, 1, "CA" + "2" * 32),
    )
    assert await runs.outcome(first, "voicemail", final=False)
    assert await runs.outcome(first, "answered")  # the completed callback after it
    assert await runs.outcome(second, "busy")
    assert not await runs.outcome(Placed(claim.call_id, 1, "CA" + "3" * 32), "answered")

    call = await current(runs, claim)
    assert [(d.state, d.outcome) for d in call.destinations] == [
        ("done", "voicemail"),
        ("done", "busy"),
    ]
    assert call.status == "completed"
    assert call.finishedAt is not None
    for destination in call.destinations:
        assert destination.dialledAt is not None
        assert destination.doneAt is not None
        assert destination.dialledAt <= destination.doneAt <= call.finishedAt


async def test_a_call_nobody_answered_fails(database: Db) -> None:
    runs, claim = await claimed(database)
    assert await runs.dialling(claim, 0)
    assert await runs.not_dialled(claim, 0, "Twilio refused the call: invalid To", attempts=1)
    assert await runs.dialling(claim, 1)
    assert await runs.dialled(claim, 1, "CA" + "2" * 32, attempts=2)
    await runs.release(claim)
    assert await runs.outcome(Placed(claim.call_id, 1, "CA" + "2" * 32), "no-answer")

    call = await current(runs, claim)
    assert call.status == "failed"
    assert call.destinations[0].error == "Twilio refused the call: invalid To"
    assert [d.attempts for d in call.destinations] == [1, 2]


async def test_a_call_that_cannot_be_placed_fails_whole_with_its_reason(database: Db) -> None:
    runs, claim = await claimed(database)
    assert await runs.fail(claim, "the from number is inactive")

    call = await current(runs, claim)
    assert call.status == "failed"
    assert call.error == "the from number is inactive"
    assert {(d.outcome, d.error) for d in call.destinations} == {
        ("failed", "the from number is inactive")
    }


async def test_an_outcome_that_comes_before_the_sid_is_stored_is_kept(database: Db) -> None:
    runs, claim = await claimed(database)
    sid = "CA" + "1" * 32
    assert await runs.dialling(claim, 0)
    # Twilio failed the call at once: its callback came before `calls.create` returned.
    assert await runs.outcome(Placed(claim.call_id, 0, sid), "failed", "unreachable")
    assert await runs.dialled(claim, 0, sid, attempts=1)

    call = await current(runs, claim)
    assert (call.destinations[0].state, call.destinations[0].outcome) == ("done", "failed")
    assert call.destinations[0].callSid == sid
