"""The migrations of `messages`: seed 000's split (2) and the owner in the key (5).

Migration 2, one document per agent → one per conversation: `split_conversations` moves each old
one-per-`agent_id` document's messages into the `(agent_id, user_number)` documents, then
deletes the old one. `merge_conversations` is its inverse, for a downgrade.

Migration 5, a conversation per owner: `key_by_owner` gives every message the owner who held its
number when it was written, and moves it into that owner's `(userId, agent_id, user_number)`
document. That owner is the user whose registration of `agent_id` (in
`registered_phone_numbers`, deleted ones included: from `created_at` until the `updated_at` of
its deletion) covers the message's `timestamp`; when several do, the document's own `userId`
if it is one of them, else the latest registered. A message no registration covers stays with
the document's `userId`; when the document has none either, it goes to a document of
`userId: ""`, which no API key reaches: kept, never shown, for an operator to assign.
`unkey_by_owner` merges each `(agent_id, user_number)` pair's documents into the one begun first,
for a downgrade (the older key cannot keep owners apart).

Every step pushes before it deletes, and a message already in its target (same `message_sid`)
is not pushed again, so a run interrupted half-way, or run twice, neither loses nor duplicates a
message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from stores import phone_numbers
from stores.database import Collection, Database, Document
from stores.documents import UtcDatetime, utc_now
from stores.messages import COLLECTION, old_shape_split

OLD_SHAPE = {"user_number": {"$exists": False}}
NEW_SHAPE = {"user_number": {"$exists": True}}


def _identity(message: Mapping[str, Any]) -> str:
    """What makes a message itself: its `message_sid`, or all of it when it has none."""
    sid = message.get("message_sid")
    return str(sid) if sid else repr(sorted(message.items()))


async def _owner(db: Database, old: Mapping[str, Any]) -> str:
    """The old document's `userId`, else the owner of its registered number ("" if none)."""
    if old.get("userId"):
        return str(old["userId"])
    number = await db[phone_numbers.COLLECTION].find_one(
        {"phoneNumber": old["agent_id"], "isDeleted": False}, {"userId": 1}
    )
    return "" if number is None else str(number["userId"])


async def _push_missing(
    collection: Collection,
    key: dict[str, Any],
    messages: list[dict[str, Any]],
    on_insert: dict[str, Any],
    updated_at: datetime,
) -> None:
    """Append to the document at `key` (made with `on_insert` if absent) the messages it does
    not hold yet; its `updated_at` becomes `updated_at` if that is later."""
    target = await collection.find_one(key) or {}
    present = {_identity(message) for message in target.get("messages", [])}
    missing = [message for message in messages if _identity(message) not in present]
    await collection.update_one(
        key,
        {
            "$push": {"messages": {"$each": missing}},
            "$max": {"updated_at": updated_at},
            "$setOnInsert": on_insert,
        },
        upsert=True,
    )


async def split_conversations(db: Database) -> None:
    collection = db[COLLECTION]
    for old in await collection.find(OLD_SHAPE).to_list(None):
        source = {**old, "userId": await _owner(db, old)}
        for user_number, messages in old_shape_split(old).items():
            key = {"agent_id": old["agent_id"], "user_number": user_number}
            await _push_missing(collection, key, messages, _created(source), utc_now())
        await collection.delete_one({"_id": old["_id"]})


async def merge_conversations(db: Database) -> None:
    collection = db[COLLECTION]
    for conversation in await collection.find(NEW_SHAPE, sort=[("_id", 1)]).to_list(None):
        user_number = conversation["user_number"]
        tagged = [{**message, "user_number": user_number} for message in conversation["messages"]]
        key = {"agent_id": conversation["agent_id"], **OLD_SHAPE}
        source = {"userId": "", **conversation}
        await _push_missing(collection, key, tagged, _created(source), utc_now())
        await collection.delete_one({"_id": conversation["_id"]})


def _created(source: Mapping[str, Any]) -> dict[str, Any]:
    """What a document made from `source`'s messages starts with."""
    return {"userId": source["userId"], "created_at": source.get("created_at")}


_MOMENT: TypeAdapter[datetime] = TypeAdapter(UtcDatetime)
_BEGINNING = datetime.min.replace(tzinfo=UTC)


def _moment(value: object) -> datetime | None:
    """A stored `timestamp` (a BSON date, or ISO text in older documents); None if neither."""
    try:
        return _MOMENT.validate_python(value)
    except ValidationError:
        return None


@dataclass(frozen=True)
class _Registration:
    """Who held a number, and when; an unknown bound is open."""

    owner: str
    since: datetime | None
    until: datetime | None  # None while it is held

    def covers(self, moment: datetime) -> bool:
        started = self.since is None or self.since <= moment
        return started and (self.until is None or moment < self.until)


async def _registrations(db: Database) -> dict[str, list[_Registration]]:
    """Every registration of every number, deleted ones included, oldest first."""
    fields = {"phoneNumber": 1, "userId": 1, "isDeleted": 1, "created_at": 1, "updated_at": 1}
    records = await db[phone_numbers.COLLECTION].find({}, fields).to_list(None)
    found: dict[str, list[_Registration]] = {}
    for record in records:
        until = _moment(record.get("updated_at")) if record.get("isDeleted") else None
        held = _Registration(str(record["userId"]), _moment(record.get("created_at")), until)
        found.setdefault(str(record["phoneNumber"]), []).append(held)
    for held_ones in found.values():
        held_ones.sort(key=lambda held: held.since or _BEGINNING)
    return found


def _owner_of(message: Mapping[str, Any], held: list[_Registration], kept: str) -> str:
    """The owner of the number when `message` was written (see the module docstring)."""
    moment = _moment(message.get("timestamp"))
    owners = [r.owner for r in held if moment is not None and r.covers(moment)]
    if not owners or kept in owners:
        return kept
    return owners[-1]


def _moments(messages: list[dict[str, Any]]) -> list[datetime]:
    moments = (_moment(message.get("timestamp")) for message in messages)
    return [moment for moment in moments if moment is not None]


def _latest(messages: list[dict[str, Any]], otherwise: datetime) -> datetime:
    return max(_moments(messages), default=otherwise)


def _began(conversation: Mapping[str, Any]) -> datetime:
    """When its first message was written (or, lacking one, the document was made)."""
    made = _moment(conversation.get("created_at")) or _BEGINNING
    return min(_moments(conversation["messages"]), default=made)


async def key_by_owner(db: Database) -> None:
    collection = db[COLLECTION]
    held = await _registrations(db)
    for conversation in await collection.find(NEW_SHAPE).to_list(None):
        kept, number = conversation.get("userId"), conversation["agent_id"]
        by_owner: dict[str, list[dict[str, Any]]] = {}
        for message in conversation["messages"]:
            owner = _owner_of(message, held.get(number, []), kept or "")
            by_owner.setdefault(owner, []).append(message)
        moved = {owner: messages for owner, messages in by_owner.items() if owner != kept}
        was_updated = _moment(conversation.get("updated_at")) or utc_now()
        for owner, messages in moved.items():
            key = {"userId": owner, "agent_id": number, "user_number": conversation["user_number"]}
            created = {"created_at": conversation.get("created_at")}
            await _push_missing(collection, key, messages, created, _latest(messages, was_updated))
        if not moved:
            continue
        if kept in by_owner:
            remaining = by_owner[kept]
            change = {"messages": remaining, "updated_at": _latest(remaining, was_updated)}
            await collection.update_one({"_id": conversation["_id"]}, {"$set": change})
        else:
            await collection.delete_one({"_id": conversation["_id"]})


async def unkey_by_owner(db: Database) -> None:
    collection = db[COLLECTION]
    oldest: dict[tuple[str, str], Document] = {}
    conversations = await collection.find(NEW_SHAPE).to_list(None)
    for conversation in sorted(conversations, key=_began):
        pair = (conversation["agent_id"], conversation["user_number"])
        kept = oldest.setdefault(pair, conversation)
        if kept is conversation:
            continue
        updated = _moment(conversation.get("updated_at")) or utc_now()
        key = {"_id": kept["_id"]}
        created = {"created_at": kept.get("created_at")}  # it exists: never inserted
        await _push_missing(collection, key, conversation["messages"], created, updated)
        await collection.delete_one({"_id": conversation["_id"]})
