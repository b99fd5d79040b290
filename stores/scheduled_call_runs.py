"""What workers write on `scheduled_calls`: claims, leases, and one outcome per destination.

A worker claims a due call with one atomic update, so of any number of workers exactly one
runs it. While it dials, it holds a lease (`leaseUntil`, renewed as it goes); a call whose
lease ran out (its worker died) is claimed again by another. Every write about a destination
names the claim (`claimedBy`), so a worker that lost its claim can no longer change anything.
Each destination is marked `dialling` before Twilio is asked and `dialled` with the call's SID
as soon as Twilio returns it: a new owner dials only the `waiting` ones, so no destination is
ever dialled twice (one whose worker died mid-request ends `failed`, not dialled again).

Outcomes arrive later, from Twilio's callbacks, which name the scheduled call and destination
in their URL (the call's SID must match, or is taken from them when they come first); the call
is `completed` once every destination is done and one was reached (answered, or a voicemail),
`failed` when none was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument

from stores.database import Database
from stores.documents import from_document, object_id, utc_now
from stores.scheduled_calls import COLLECTION, Destination, Outcome, ScheduledCall

REACHED: tuple[Outcome, ...] = ("answered", "voicemail")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # `$gte` it: any lease (`$ne: null` scans)


@dataclass(frozen=True)
class Placed:
    """A call Twilio placed for one destination of a scheduled call, as its webhooks name it
    (the scheduled call and destination from their URL; `from_number_id`, the number the
    webhook was signed for, when it must be that call's)."""

    call_id: str
    index: int
    call_sid: str
    from_number_id: str | None = None


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
        claimed = {"status": "in-progress", "claimedBy": worker, "leaseUntil": now + lease}
        document = None
        # Pending calls first, then calls whose worker's lease ran out: two queries rather than
        # one `$or`, so each uses its own index.
        for due in (
            {"status": "pending", "isDeleted": False, "scheduledDateTime": {"$lte": now}},
            {"status": "in-progress", "leaseUntil": {"$lt": now}, "isDeleted": False},
        ):
            document = await self._collection.find_one_and_update(
                due,
                {"$set": claimed | {"updated_at": utc_now()}},
                sort=[("scheduledDateTime", 1)],
                return_document=ReturnDocument.AFTER,
            )
            if document is not None:
                break
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
            ({"status": "in-progress", "leaseUntil": {"$gte": _EPOCH}}, "leaseUntil"),
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
        """Twilio placed the call: its SID. (Its outcome may have come first, a fast failure:
        the destination is then done already, and only gets its SID.)"""
        dialled = {
            "state": "dialled",
            "callSid": call_sid,
            "attempts": attempts,
            "dialledAt": utc_now(),
        }
        if await self._set(claim, index, {"state": "dialling"}, dialled):
            return True
        sid_only = {"callSid": call_sid, "attempts": attempts, "dialledAt": utc_now()}
        return await self._set(claim, index, {"state": "done", "callSid": call_sid}, sid_only)

    async def not_dialled(self, claim: Claim, index: int, error: str, attempts: int) -> bool:
        """The destination could not be dialled: it is done, `failed`, with `error`."""
        done = {
            "state": "done",
            "outcome": "failed",
            "error": error,
            "attempts": attempts,
            "doneAt": utc_now(),
        }
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
        document = await self._collection.find_one_and_update(
            claim.query,
            {"$set": {"leaseUntil": None, "updated_at": utc_now()}},
            return_document=ReturnDocument.AFTER,
        )
        if document is not None and all(d["state"] == "done" for d in document["destinations"]):
            await self.settle(claim.call_id)  # else the last outcome to come settles it

    async def fail(self, claim: Claim, error: str) -> bool:
        """The call cannot be placed at all (bad input): `failed`, with why, and every
        destination still waiting ends `failed` too, undialled."""
        document = await self._collection.find_one(claim.query)
        if document is None:
            return False
        destinations = [
            d | {"state": "done", "outcome": "failed", "error": error, "doneAt": utc_now()}
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
        placed: Placed,
        outcome: Outcome,
        error: str | None = None,
        *,
        final: bool = True,
    ) -> bool:
        """Record what became of the destination `placed` names (Twilio's callbacks may come
        before the worker has stored the call's SID). An outcome recorded while the call ran
        (`voicemail`) stays when the call then ends (`answered`); `final=False` records the
        outcome while the call goes on. False if no such destination was dialled."""
        call = await self._placed(placed)
        if call is None:
            return False
        kept = call.destinations[placed.index].outcome is not None and outcome == "answered"
        change: dict[str, Any] = {} if kept else {"outcome": outcome}
        if final:
            change |= {"state": "done", "doneAt": utc_now()}
        if error is not None:
            change["error"] = error
        after = await self._set_placed(placed, change)
        # Whichever outcome is written last sees every destination done, and settles the call.
        if after is not None and all(d["state"] == "done" for d in after["destinations"]):
            await self.settle(placed.call_id)
        return after is not None

    async def answered(self, placed: Placed, record_id: str) -> bool:
        """Link the destination to its call's record in `calls`."""
        return await self._set_placed(placed, {"callId": record_id}) is not None

    async def placed_call(self, placed: Placed) -> ScheduledCall | None:
        """The scheduled call, if `placed` names one of its destinations that was dialled."""
        return await self._placed(placed)

    async def _placed(self, placed: Placed) -> ScheduledCall | None:
        call = await self.get(placed.call_id)
        if call is None or not 0 <= placed.index < len(call.destinations):
            return None
        if placed.from_number_id is not None and call.fromPhoneNumberId != placed.from_number_id:
            return None
        destination = call.destinations[placed.index]
        if destination.state == "waiting" or destination.callSid not in (None, placed.call_sid):
            return None
        return call

    async def _set_placed(self, placed: Placed, change: dict[str, Any]) -> dict[str, Any] | None:
        """The scheduled call after the change, or None if it did not apply."""
        prefix = f"destinations.{placed.index}"
        document: dict[str, Any] | None = await self._collection.find_one_and_update(
            {
                "_id": ObjectId(placed.call_id),
                f"{prefix}.callSid": {"$in": [None, placed.call_sid]},
                f"{prefix}.state": {"$ne": "waiting"},
            },
            {
                "$set": {f"{prefix}.{k}": v for k, v in change.items()}
                | {f"{prefix}.callSid": placed.call_sid, "updated_at": utc_now()}
            },
            return_document=ReturnDocument.AFTER,
        )
        return document

    async def awaiting_outcomes(self, dialled_before: datetime) -> list[ScheduledCall]:
        """In-progress calls whose dialling is over and that still have a destination dialled
        before `dialled_before` with no final outcome (its status callback never came)."""
        cursor = self._collection.find({"status": "in-progress", "leaseUntil": None}, limit=500)
        calls = [from_document(ScheduledCall, document) for document in await cursor.to_list()]
        return [
            call
            for call in calls
            if any(
                d.state == "dialled" and d.dialledAt is not None and d.dialledAt < dialled_before
                for d in call.destinations
            )
        ]

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
