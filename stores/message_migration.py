"""Seed 000's restructuring of `messages`: one document per agent → one per conversation.

`split_conversations` moves each old one-per-`agent_id` document's messages into the
`(agent_id, user_number)` documents, then deletes the old one. A message already in its target
(same `message_sid`) is not pushed again, so a run interrupted half-way, or run twice, neither
loses nor duplicates a message. `merge_conversations` is its inverse, for a downgrade.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stores import phone_numbers
from stores.database import Collection, Database, Document
from stores.documents import utc_now
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
    collection: Collection, key: dict[str, Any], messages: list[dict[str, Any]], source: Document
) -> None:
    """Append to the document at `key` (made if absent) the messages it does not hold yet."""
    target = await collection.find_one(key) or {}
    present = {_identity(message) for message in target.get("messages", [])}
    missing = [message for message in messages if _identity(message) not in present]
    await collection.update_one(
        key,
        {
            "$push": {"messages": {"$each": missing}},
            "$set": {"updated_at": utc_now()},
            "$setOnInsert": {"userId": source["userId"], "created_at": source.get("created_at")},
        },
        upsert=True,
    )


async def split_conversations(db: Database) -> None:
    collection = db[COLLECTION]
    for old in await collection.find(OLD_SHAPE).to_list(None):
        source = {**old, "userId": await _owner(db, old)}
        for user_number, messages in old_shape_split(old).items():
            key = {"agent_id": old["agent_id"], "user_number": user_number}
            await _push_missing(collection, key, messages, source)
        await collection.delete_one({"_id": old["_id"]})


async def merge_conversations(db: Database) -> None:
    collection = db[COLLECTION]
    for conversation in await collection.find(NEW_SHAPE, sort=[("_id", 1)]).to_list(None):
        user_number = conversation["user_number"]
        tagged = [{**message, "user_number": user_number} for message in conversation["messages"]]
        key = {"agent_id": conversation["agent_id"], **OLD_SHAPE}
        await _push_missing(collection, key, tagged, {"userId": "", **conversation})
        await collection.delete_one({"_id": conversation["_id"]})
