"""Scheduled calls: the `scheduled_calls` collection as its owner sees and changes it.

Status moves `pending` → `in-progress` (claimed by one worker) → `completed` / `failed`. Only a
pending call may be changed by its owner. `promptContent` is a snapshot of the prompt's text
taken when the call is scheduled (or its prompt changed), so later prompt edits do not reach it.
What the worker writes (its claim, one outcome per destination) is in
`stores.scheduled_call_runs`.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from bson import ObjectId
from pydantic import BaseModel, Field, model_validator
from pymongo import ReturnDocument

from stores.database import Database
from stores.documents import UtcDatetime, from_document, object_id, utc_now
from stores.owned import IdText, Listing, ListQuery, OwnedCollection
from stores.phone_numbers import E164

COLLECTION = "scheduled_calls"
Status = Literal["pending", "in-progress", "completed", "failed"]
Outcome = Literal["answered", "voicemail", "busy", "no-answer", "failed"]
MESSAGE_MAX_CHARS = 1000
_REFERENCES = ("fromPhoneNumberId", "promptId")


class NotPending(Exception):
    """The scheduled call has been claimed or has run; it can no longer be changed."""


class ScheduledCallFields(BaseModel):
    """What an owner sets. An `ai` call needs a prompt (of the same `from` number); a `normal`
    call says its `message` (`ScheduledCallBody`: required of new and changed calls; one stored
    before it existed fails when it is due). `voicemailMessage` is left after an answering
    machine's beep (a `normal` call leaves its `message` when it has none); without one, a
    machine is hung up on."""

    callType: Literal["ai", "normal"]
    fromPhoneNumberId: IdText
    toPhoneNumbers: list[E164] = Field(min_length=1, max_length=100)
    scheduledDateTime: UtcDatetime
    promptId: IdText | None = None
    message: str | None = Field(default=None, min_length=1, max_length=MESSAGE_MAX_CHARS)
    voicemailMessage: str | None = Field(default=None, min_length=1, max_length=MESSAGE_MAX_CHARS)

    @model_validator(mode="after")
    def _ai_needs_a_prompt(self) -> Self:
        if self.callType == "ai" and self.promptId is None:
            raise ValueError("promptId is required when callType is 'ai'")
        return self

    @property
    def left_on_voicemail(self) -> str | None:
        """What is said after an answering machine's beep; None: hang up on it."""
        return self.voicemailMessage or (self.message if self.callType == "normal" else None)


class ScheduledCallBody(ScheduledCallFields):
    """A scheduled call as it is created or left by a change: complete for its type."""

    @model_validator(mode="after")
    def _normal_needs_a_message(self) -> Self:
        if self.callType == "normal" and self.message is None:
            raise ValueError("message is required when callType is 'normal'")
        return self


class ScheduledCallUpdate(BaseModel):
    """A partial change of a pending call; absent (or null) fields are left as they are."""

    callType: Literal["ai", "normal"] | None = None
    fromPhoneNumberId: IdText | None = None
    toPhoneNumbers: list[E164] | None = Field(default=None, min_length=1, max_length=100)
    scheduledDateTime: UtcDatetime | None = None
    promptId: IdText | None = None
    message: str | None = Field(default=None, min_length=1, max_length=MESSAGE_MAX_CHARS)
    voicemailMessage: str | None = Field(default=None, min_length=1, max_length=MESSAGE_MAX_CHARS)


class ScheduledCallCreate(ScheduledCallFields):
    userId: str
    promptContent: str | None = None


class Destination(BaseModel):
    """One number of a scheduled call, and how calling it went.

    `state`: `waiting` to be dialled; `dialling` while Twilio is asked (a worker that dies
    then leaves it so, and it is never dialled again); `dialled` once Twilio gave the call's
    SID; `done` with its `outcome`. `callId` is the answered call's record in `calls`.
    `dialledAt`: when Twilio took the call; `doneAt`: when its outcome was final.
    """

    to: str
    state: Literal["waiting", "dialling", "dialled", "done"] = "waiting"
    callSid: str | None = None
    outcome: Outcome | None = None
    error: str | None = None
    attempts: int = 0
    callId: str | None = None
    dialledAt: UtcDatetime | None = None
    doneAt: UtcDatetime | None = None


class ScheduledCall(ScheduledCallCreate):
    id: str
    status: Status
    isDeleted: bool
    created_at: UtcDatetime
    updated_at: UtcDatetime
    destinations: list[Destination] = Field(default_factory=list)
    error: str | None = None
    """Why the whole call failed before dialling anyone (bad input)."""
    startedAt: UtcDatetime | None = None
    finishedAt: UtcDatetime | None = None


def _stored(fields: dict[str, Any]) -> dict[str, Any]:
    for name in _REFERENCES:
        if fields.get(name) is not None:
            fields[name] = ObjectId(fields[name])
    return fields


class ScheduledCallStore:
    """The `scheduled_calls` collection."""

    def __init__(self, db: Database) -> None:
        self._collection = db[COLLECTION]
        self._owned = OwnedCollection(self._collection, ScheduledCall)

    async def create(self, data: ScheduledCallCreate) -> ScheduledCall:
        fields = _stored(data.model_dump(exclude={"userId"})) | {"status": "pending"}
        return await self._owned.insert(data.userId, fields)

    async def get(self, user_id: str, call_id: str) -> ScheduledCall | None:
        """The owner's live scheduled call; None for anyone else's, or a deleted one."""
        return await self._owned.get(user_id, call_id)

    async def page(self, user_id: str, query: ListQuery) -> Listing[ScheduledCall]:
        filters = _stored(dict(query.filters))
        paged = ListQuery(filters, query.sort, query.descending, query.limit, query.offset)
        return await self._owned.find(user_id, paged)

    async def update(
        self, user_id: str, call_id: str, fields: ScheduledCallFields, prompt_content: str | None
    ) -> ScheduledCall | None:
        """Replace the owner's settings of a pending call; None if the owner has no such call.

        Raises NotPending if the call exists but a worker has claimed it already.
        """
        oid = object_id(call_id)
        if oid is None:
            return None
        change = _stored(fields.model_dump()) | {"promptContent": prompt_content}
        document = await self._collection.find_one_and_update(
            self._owned.scope(user_id, _id=oid, status="pending"),
            {"$set": {**change, "updated_at": utc_now()}},
            return_document=ReturnDocument.AFTER,
        )
        if document is not None:
            return from_document(ScheduledCall, document)
        if await self.get(user_id, call_id) is not None:
            raise NotPending(call_id)
        return None

    async def delete(self, user_id: str, call_id: str) -> bool:
        return await self._owned.soft_delete(user_id, call_id)
