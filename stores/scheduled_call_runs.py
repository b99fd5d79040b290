"""What workers write on `scheduled_calls`: claims, leases, and one outcome per destination.

A worker claims a due call with one atomic update, so of any number of workers exactly one
runs it. While it dials, it holds a lease (`leaseUntil`, renewed as it goes); a call whose
lease ran out (its worker died) is claimed again by another. Every write about a destination
names the claim (`claimedBy`), so a worker that lost its claim can no longer change anything.
Each destination is marked `dialling` before Twilio is asked and `dialled` with the call's SID
as soon as Twilio returns it: a new owner dials only the `waiting` ones, so no destination is
ever dialled twice (one whose worker died mid-request ends `failed`, not dialled again).

Outcomes arrive later, from Twilio's callbacks, by call SID; the call is `completed` once every
destination is done and one was reached (answered, or a voicemail), `failed` when none was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument

from stores.database import Database
from stores.documents import from_document, object_id, utc_now
from stores.scheduled_calls import COLLECTION, Destination, Outcome, ScheduledCall

REACHED: tuple[Outcome, ...] = ("answered", "voicemail")


@dataclass(frozen=True)
class Claim:
    """One worker's hold on one scheduled call."""

    call_id: str
    worker: str

    @property
    def query(self) -> dict[str, Any]:
        return {"_id": ObjectId(self.call_id), "claimedBy": self.worker, "status": "in-progress"}


class ScheduledCallRuns:
    """The worker's side of the `scheduled_calls` collection."""

    def __init__(self, db: Database) -> None:
        self._collection = db[COLLECTION]

    async def claim_due(self, now: datetime, worker: str, lease: timedelta) -> ScheduledCall | None:
        """Atomically take the earliest due call (pending, or in progress under a lease that
        ran out) for `worker`, leased until `now + lease`; None when nothing is due."""
        document = await self._collection.find_one_and_update(
            {
                "isDeleted": False,
                "$or": [
                    {"status": "pending", "scheduledDateTime": {"$lte": now}},
                    {"status": "in-progress", "leaseUntil": {"$lt": now}},
                ],
            },
            {
                "$set": {
                    "status": "in-progress",
                    "claimedBy": worker,
                    "leaseUntil": now + lease,
                    "updated_at": utc_now(),
                },
            },
            sort=[("scheduledDateTime", 1)],
            return_document=ReturnDocument.AFTER,
        )
        if document is None:
            return None
        if "destinations" not in document:
            document = await self._start(document, worker, now)
        return from_document(ScheduledCall, document)

    async def _start(self, document: dict[str, Any], worker: str, now: datetime) -> dict[str, Any]:
        """The first claim lays out one `waiting` destination per number."""
        waiting = [Destination(to=to).model_dump() for to in document["toPhoneNumbers"]]
        started = await self._collection.find_one_and_update(
            {"_id": document["_id"], "claimedBy": worker, "destinations": {"$exists": False}},
            {"$set": {"destinations": waiting, "startedAt": now}},
            return_document=ReturnDocument.AFTER,
        )
        return started or document

    async def next_wake(self) -> datetime | None:
        """When the next call becomes due: the earliest pending time or running-out lease."""
        times = []
        for query, field in (
            ({"status": "pending", "isDeleted": False}, "scheduledDateTime"),
            ({"status": "in-progress", "leaseUntil": {"$ne": None}}, "leaseUntil"),
        ):
            first = await self._collection.find_one(query, {field: 1}, sort=[(field, 1)])
            if first is not None and first.get(field) is not None:
                times.append(first[field])
        return min(times, default=None)

    async def renew(self, claim: Claim, until: datetime) -> bool:
        """Extend the claim's lease; False if the worker no longer holds the claim."""
        result = await self._collection.update_one(claim.query, {"$set": {"leaseUntil": until}})
        return result.modified_count == 1

    async def dialling(self, claim: Claim, index: int) -> bool:
        """Mark a waiting destination as being dialled; False if it was not waiting, or the
        claim is lost (then it must not be dialled)."""
        return await self._set(claim, index, {"state": "waiting"}, {"state": "dialling"})

    async def dialled(self, claim: Claim, index: int, call_sid: str, attempts: int) -> bool:
        dialled = {"state": "dialled", "callSid": call_sid, "attempts": attempts}
        return await self._set(claim, index, {"state": "dialling"}, dialled)

    async def not_dialled(self, claim: Claim, index: int, error: str, attempts: int) -> bool:
        """The destination could not be dialled: it is done, `failed`, with `error`."""
        done = {"state": "done", "outcome": "failed", "error": error, "attempts": attempts}
        return await self._set(claim, index, {"state": "dialling"}, done)

    async def _set(
        self, claim: Claim, index: int, expected: dict[str, Any], change: dict[str, Any]
    ) -> bool:
        prefix = f"destinations.{index}"
        query = {f"{prefix}.{key}": value for key, value in expected.items()}
        changed = {f"{prefix}.{key}": value for key, value in change.items()}
        result = await self._collection.update_one(
            claim.query | query, {"$set": changed | {"updated_at": utc_now()}}
        )
        return result.modified_count == 1

    async def release(self, claim: Claim) -> None:
        """Every destination is dialled or done: no lease is needed while calls run (outcomes
        arrive by callback)."""
        await self._collection.update_one(
            claim.query, {"$set": {"leaseUntil": None, "updated_at": utc_now()}}
        )
        await self.settle(claim.call_id)

    async def fail(self, claim: Claim, error: str) -> bool:
        """The call cannot be placed at all (bad input): `failed`, with why, and every
        destination still waiting ends `failed` too, undialled."""
        document = await self._collection.find_one(claim.query)
        if document is None:
            return False
        destinations = [
            d | {"state": "done", "outcome": "failed", "error": error}
            if d["state"] == "waiting"
            else d
            for d in document.get("destinations", [])
        ]
        result = await self._collection.update_one(
            claim.query,
            {
                "$set": {
                    "destinations": destinations,
                    "error": error,
                    "leaseUntil": None,
                    "updated_at": utc_now(),
                }
            },
        )
        await self.settle(claim.call_id)
        return result.modified_count == 1

    async def outcome(
        self,
        call_sid: str,
        outcome: Outcome,
        error: str | None = None,
        *,
        final: bool = True,
        from_number_id: str | None = None,
    ) -> ScheduledCall | None:
        """Record what became of the destination dialled as `call_sid` (placed from the number
        `from_number_id`, when given); the scheduled call, or None if no destination has it.
        A `voicemail` outcome stays when the call then ends (`answered`); `final=False`
        records the outcome while the call goes on."""
        found = await self._destination(call_sid, from_number_id)
        if found is None:
            return None
        call, index = found
        kept = call.destinations[index].outcome is not None and outcome == "answered"
        change: dict[str, Any] = {} if kept else {"outcome": outcome}
        if final:
            change["state"] = "done"
        if error is not None:
            change["error"] = error
        await self._set_found(call, index, call_sid, change)
        await self.settle(call.id)
        return call

    async def answered(self, call_sid: str, call_id: str) -> ScheduledCall | None:
        """Link the destination dialled as `call_sid` to its record in `calls`."""
        found = await self._destination(call_sid)
        if found is None:
            return None
        await self._set_found(*found, call_sid, {"callId": call_id})
        return found[0]

    async def _destination(
        self, call_sid: str, from_number_id: str | None = None
    ) -> tuple[ScheduledCall, int] | None:
        query: dict[str, Any] = {"destinations.callSid": call_sid}
        if from_number_id is not None:
            query["fromPhoneNumberId"] = ObjectId(from_number_id)
        document = await self._collection.find_one(query)
        if document is None:
            return None
        call = from_document(ScheduledCall, document)
        index = next(i for i, d in enumerate(call.destinations) if d.callSid == call_sid)
        return call, index

    async def _set_found(
        self, call: ScheduledCall, index: int, call_sid: str, change: dict[str, Any]
    ) -> None:
        prefix = f"destinations.{index}"
        await self._collection.update_one(
            {"_id": ObjectId(call.id), f"{prefix}.callSid": call_sid},
            {"$set": {f"{prefix}.{k}": v for k, v in change.items()} | {"updated_at": utc_now()}},
        )

    async def get(self, call_id: str) -> ScheduledCall | None:
        """The scheduled call, whoever owns it (webhooks check the owner themselves)."""
        oid = object_id(call_id)
        document = None if oid is None else await self._collection.find_one({"_id": oid})
        return None if document is None else from_document(ScheduledCall, document)

    async def settle(self, call_id: str) -> None:
        """Once every destination is done and no lease is held: `completed` if one was
        reached, else `failed` (a single update each, so concurrent callbacks agree)."""
        base = {
            "_id": ObjectId(call_id),
            "status": "in-progress",
            "leaseUntil": None,
            "destinations.state": {"$nin": ["waiting", "dialling", "dialled"]},
        }
        finished = {"finishedAt": utc_now(), "updated_at": utc_now()}
        reached = base | {"destinations.outcome": {"$in": list(REACHED)}}
        done = await self._collection.update_one(
            reached, {"$set": {"status": "completed", **finished}}
        )
        if done.modified_count == 0:
            await self._collection.update_one(base, {"$set": {"status": "failed", **finished}})
