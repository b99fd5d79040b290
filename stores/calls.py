"""Calls: the `calls` collection, its live transcript and the end of a call.

Field names are snake_case as the existing call-log UI reads them (seed 004), except `userId`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from stores.call_log_query import call_log_filter, call_log_sort
from stores.database import Database
from stores.documents import UtcDatetime, as_utc, from_document, object_id, utc_now
from stores.owned import Listing, ListQuery, OwnedCollection

COLLECTION = "calls"
# `$slice: [skip, limit]` needs a positive limit; no transcript comes near this.
_ALL = 1 << 30
# A create that loses an upsert race reads the winner's document; this bounds the retries.
_CREATE_ATTEMPTS = 3


HANDED_OVER = "handed-over"
"""A call's `stream_sid` between two media streams (`CallStore.hand_over`)."""


class CallNotFound(LookupError):
    """No call has this `call_sid`."""


class ForeignCall(PermissionError):
    """The call with this `call_sid` belongs to another owner, or is on another number."""


class TranscriptEntry(BaseModel):
    """One final utterance. `metrics` holds latency figures in milliseconds."""

    role: Literal["user", "assistant"]
    text: str
    timestamp: UtcDatetime
    # Makes a retried append idempotent: a write whose reply was lost is not pushed twice.
    entry_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    interrupted: bool | None = None
    metrics: dict[str, float] | None = None
    error: str | None = None
    source: str | None = None

    def to_document(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class CallCreate(BaseModel):
    """A call being accepted. Numbers are stored as given (the webhook normalises them)."""

    call_sid: str
    from_number: str
    to_number: str
    agent_id: str
    userId: str
    session_id: str
    start_time: UtcDatetime
    direction: Literal["inbound", "outbound"] = "inbound"
    scheduled_call_id: str | None = None
    """The scheduled call that placed an outbound call."""


class CallSummary(CallCreate):
    """A call without its transcript, as call lists show it."""

    id: str
    status: Literal["active", "completed"]
    end_time: UtcDatetime | None = None
    duration_seconds: float | None = None
    end_reason: str | None = None
    heartbeat_at: UtcDatetime | None = None
    """While the call is active: when its server last marked it alive."""
    stream_sid: str | None = None
    """The call's media stream, once it started."""
    created_at: UtcDatetime
    updated_at: UtcDatetime


class Call(CallSummary):
    transcript: list[TranscriptEntry]


@dataclass(frozen=True)
class CallLine:
    """One of our numbers and its owner: what a Twilio webhook was signed for, and so the only
    calls it may touch."""

    user_id: str
    number: str  # E.164

    def carries(self, call: CallCreate) -> bool:
        """Whether `call` is the owner's and goes through this number: dialled (an incoming
        call) or calling (a call placed from it)."""
        return call.userId == self.user_id and self.number in (call.to_number, call.from_number)


class _InOrder:
    """Per-key FIFO turns: `asyncio.Lock` wakes its waiters in the order they arrived."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._holders: Counter[str] = Counter()

    @asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._holders[key] += 1
        try:
            async with lock:
                yield
        finally:
            self._holders[key] -= 1
            if not self._holders[key]:
                del self._holders[key], self._locks[key]


class CallStore:
    """The `calls` collection.

    Share one instance per process: it keeps concurrent appends to a call in call order.
    """

    def __init__(self, db: Database) -> None:
        self._collection = db[COLLECTION]
        self._appends = _InOrder()
        self._owned = OwnedCollection(self._collection, Call, soft_delete=False)

    async def create(self, data: CallCreate) -> Call:
        """Record an accepted call, or return the call already recorded with this `call_sid`
        for the same owner and number.

        Twilio retries webhooks, so a repeated create is not an error: `$setOnInsert` with
        `upsert` against the unique `call_sid` index writes the first one only. A recorded call
        of another owner or number is not returned: ForeignCall is raised, and that call is
        left as it is (the upsert never changes an existing document).
        """
        now = utc_now()
        fields = data.model_dump(exclude={"call_sid"})
        fields |= {
            "status": "active",
            "transcript": [],
            "heartbeat_at": now,
            "created_at": now,
            "updated_at": now,
        }
        query = {"call_sid": data.call_sid}
        for _attempt in range(_CREATE_ATTEMPTS):
            document = await self._upsert(query, fields)
            if document is None:
                document = await self._collection.find_one(query)
            if document is not None:
                return _same_call(from_document(Call, document), data)
        raise RuntimeError(f"call {data.call_sid} was neither inserted nor found")

    async def _upsert(self, query: dict[str, Any], fields: dict[str, Any]) -> Any:
        """The document after the upsert, or None if a concurrent create got there first.

        MongoDB reports that race as DuplicateKeyError; SecantusDB (0.7) returns None instead.
        Either way the winner's document can then be read.
        """
        try:
            return await self._collection.find_one_and_update(
                query, {"$setOnInsert": fields}, upsert=True, return_document=ReturnDocument.AFTER
            )
        except DuplicateKeyError:
            return None

    async def get(self, call_sid: str) -> Call | None:
        document = await self._collection.find_one({"call_sid": call_sid})
        return None if document is None else from_document(Call, document)

    async def get_owned(self, user_id: str, call_id: str) -> Call | None:
        """The owner's call by its id, with the transcript; None for anyone else's."""
        return await self._owned.get(user_id, call_id)

    async def page(self, user_id: str, query: ListQuery) -> Listing[CallSummary]:
        """A page of the owner's calls, without transcripts (see `stores.call_log_query`)."""
        cursor = self._collection.find(
            call_log_filter(user_id, query),
            {"transcript": 0},
            sort=call_log_sort(query),
            skip=query.offset,
            limit=query.limit + 1,
        )
        documents = await cursor.to_list(None)
        items = [from_document(CallSummary, document) for document in documents[: query.limit]]
        return Listing(items, has_more=len(documents) > query.limit)

    async def get_since(self, call_id: str, since: int, user_id: str | None = None) -> Call | None:
        """The call by its id with only `transcript[since:]`, in one read; None if there is no
        such call (or, given `user_id`, it is someone else's). For pollers and watchers."""
        oid = object_id(call_id)
        if since < 0 or oid is None:
            return None
        owner = {} if user_id is None else {"userId": user_id}
        projection = {"transcript": {"$slice": [since, _ALL]}}
        document = await self._collection.find_one({"_id": oid, **owner}, projection)
        return None if document is None else from_document(Call, document)

    async def append_transcript(self, call_sid: str, entry: TranscriptEntry) -> None:
        """Add `entry` at the end of the transcript (also after the call has ended).

        Appends made concurrently through this store land in the order they were called:
        unserialised, the client's connection pool could deliver them to the server in any
        order. Raises CallNotFound if there is no such call.
        """
        update = {"$push": {"transcript": entry.to_document()}, "$set": {"updated_at": utc_now()}}
        query = {"call_sid": call_sid, "transcript.entry_id": {"$ne": entry.entry_id}}
        async with self._appends.turn(call_sid):
            result = await self._collection.update_one(query, update)
        if result.matched_count == 0 and await self.get(call_sid) is None:
            raise CallNotFound(call_sid)

    async def claim_stream(self, call_sid: str, stream_sid: str) -> bool:
        """Record that the call's media stream started, in one write that reads nothing: True
        only for the first stream of an active call, or the one it was handed over to (a
        replayed stream token fails here, whichever server it reaches).

        `$in` with None matches a missing `stream_sid`, as MongoDB does. Not findAndModify:
        the embedded database (SecantusDB 0.7) scans the whole collection for every
        findAndModify that changes a stored document, which grows with every call ever made
        (`scripts/bench_store`).
        """
        result = await self._collection.update_one(
            {"call_sid": call_sid, "status": "active", "stream_sid": {"$in": [None, HANDED_OVER]}},
            {"$set": {"stream_sid": stream_sid, "updated_at": utc_now()}},
        )
        return result.matched_count == 1

    async def hand_over(self, call_sid: str) -> bool:
        """The call is moving to a new media stream (Twilio is sent new TwiML): the end of
        the current stream no longer ends the call, and the next stream may claim it."""
        result = await self._collection.update_one(
            {"call_sid": call_sid, "status": "active"},
            {"$set": {"stream_sid": HANDED_OVER, "updated_at": utc_now()}},
        )
        return result.modified_count == 1

    async def finalize(
        self,
        call_sid: str,
        *,
        ended_at: datetime,
        reason: str,
        line: CallLine | None = None,
        stream_sid: str | None = None,
    ) -> bool:
        """Mark the call completed. True for the one caller that ended it, False otherwise.

        The update filters on `status: "active"`, so of concurrent callers (stream stop,
        disconnect, Twilio's status callback) exactly one wins. Unknown calls give False.
        Given the `line` a webhook was signed for, a call not on it raises ForeignCall and is
        left as it is (a call's owner and numbers never change, so reading them once is enough).
        Given the `stream_sid` of the stream that ended, a call handed over to another stream
        is left running.
        """
        call = await self.get(call_sid)
        if call is None:
            return False
        if line is not None and not line.carries(call):
            raise ForeignCall(call_sid)
        if call.status != "active":
            return False
        ended_at = as_utc(ended_at)
        ended = {
            "status": "completed",
            "end_time": ended_at,
            "duration_seconds": (ended_at - call.start_time).total_seconds(),
            "end_reason": reason,
            "updated_at": utc_now(),
        }
        query = {"call_sid": call_sid, "status": "active"}
        if stream_sid is not None:
            query["stream_sid"] = stream_sid
        result = await self._collection.update_one(query, {"$set": ended})
        return result.modified_count == 1

    async def heartbeat(self, call_sids: list[str]) -> None:
        """Mark these active calls as alive now (one write for all of them)."""
        if call_sids:
            await self._collection.update_many(
                {"call_sid": {"$in": call_sids}, "status": "active"},
                {"$set": {"heartbeat_at": utc_now()}},
            )

    async def stale(self, before: datetime, limit: int = 100) -> list[Call]:
        """Active calls whose heartbeat is older than `before`, without their transcripts."""
        cursor = self._collection.find(
            {"status": "active", "heartbeat_at": {"$lt": as_utc(before)}},
            {"transcript": 0},
            limit=limit,
        )
        return [from_document(Call, {**doc, "transcript": []}) for doc in await cursor.to_list()]

    async def finalize_lost(self, call: Call, reason: str) -> bool:
        """End a call `stale` found, as of its last heartbeat. True for the one sweeper that
        ended it: the update requires the heartbeat it saw, so a call marked alive meanwhile,
        or ended by someone else, is left as it is."""
        ended_at = as_utc(call.heartbeat_at or call.start_time)
        ended = {
            "status": "completed",
            "end_time": ended_at,
            "duration_seconds": max(0.0, (ended_at - call.start_time).total_seconds()),
            "end_reason": reason,
            "updated_at": utc_now(),
        }
        result = await self._collection.update_one(
            {"call_sid": call.call_sid, "status": "active", "heartbeat_at": call.heartbeat_at},
            {"$set": ended},
        )
        return result.modified_count == 1

    async def transcript_since(
        self, call_sid: str, index: int
    ) -> tuple[str, list[TranscriptEntry]] | None:
        """The call's status and `transcript[index:]`, or None if there is no such call.

        For pollers: pass the number of entries already seen; only the new ones are sent.
        """
        if index < 0:
            raise ValueError(f"index must be >= 0, got {index}")
        projection = {"_id": 0, "status": 1, "transcript": {"$slice": [index, _ALL]}}
        document = await self._collection.find_one({"call_sid": call_sid}, projection)
        if document is None:
            return None
        entries = [TranscriptEntry.model_validate(item) for item in document["transcript"]]
        return document["status"], entries


def _same_call(recorded: Call, data: CallCreate) -> Call:
    """`recorded`, when `data` is a retry of it (same owner, same number dialled)."""
    if (recorded.userId, recorded.to_number) != (data.userId, data.to_number):
        raise ForeignCall(data.call_sid)
    return recorded
