"""Migration 5: conversations keyed by owner, on documents that mixed two owners of one number,
documents without an owner, half-migrated and twice-migrated data, and undone."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from stores import migrations
from stores.message_migration import key_by_owner
from stores.messages import MessageStore
from stores.owned import ListQuery
from tests.stores.factories import START
from tests.stores.test_messages import AGENT, ALICE, BOB

Db = AsyncDatabase[dict[str, Any]]
FIRST, NEXT = "first-owner", "next-owner"
HANDED_OVER = START + timedelta(days=1)  # the first owner deletes the number
TAKEN_UP = HANDED_OVER + timedelta(hours=1)  # the next owner registers it


def at(hours: float) -> datetime:
    return START + timedelta(hours=hours)


def message(sid: str, when: datetime | str) -> dict[str, Any]:
    fields = {"agent_number": AGENT, "conversation_id": "c", "direction": "inbound"}
    return {"message_sid": sid, "body": sid, "role": "user", "timestamp": when, **fields}


async def hand_over(database: Db) -> None:
    """The number's registrations: the first owner's, deleted; the next owner's, live."""
    numbers = database["registered_phone_numbers"]
    await numbers.insert_one({"phoneNumber": AGENT, "userId": FIRST, "isDeleted": True,
                              "created_at": START, "updated_at": HANDED_OVER})  # fmt: skip
    await numbers.insert_one({"phoneNumber": AGENT, "userId": NEXT, "isDeleted": False,
                              "created_at": TAKEN_UP, "updated_at": TAKEN_UP})  # fmt: skip


async def before_migration_5(
    database: Db, *conversations: dict[str, Any], half_way: bool = False
) -> None:
    """The database as migration 4 left it, or (`half_way`) as a run of 5 stopped after it
    dropped the old key's index."""
    await migrations.downgrade(database, 4)
    if half_way:
        await database["messages"].drop_index("conversation_unique")
    await hand_over(database)
    await database["messages"].insert_many([dict(c) for c in conversations])


def conversation(user: str, *messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"agent_id": AGENT, "user_number": user, "messages": list(messages),
            "created_at": START, "updated_at": TAKEN_UP + timedelta(hours=3), **fields}  # fmt: skip


async def shape(database: Db) -> dict[tuple[str | None, str], list[str]]:
    """Each document's owner and `user_number`, and its message sids."""
    found: dict[tuple[str | None, str], list[str]] = {}
    for document in await database["messages"].find({}).to_list(None):
        key = (document.get("userId"), document["user_number"])
        assert key not in found, f"two documents for {key}"
        found[key] = sorted(m["message_sid"] for m in document["messages"])
    return found


MIXED = conversation(
    ALICE,
    message("SM-first", at(1)),
    message("SM-next", TAKEN_UP + timedelta(hours=2)),
    message("SM-next-text", (TAKEN_UP + timedelta(hours=3)).isoformat()),  # older documents
    userId=FIRST,
)


async def test_a_conversation_that_mixed_two_owners_is_split_between_them(database: Db) -> None:
    await before_migration_5(database, MIXED)
    assert 5 in [m.version for m in await migrations.upgrade(database)]
    assert await shape(database) == {
        (FIRST, ALICE): ["SM-first"],
        (NEXT, ALICE): ["SM-next", "SM-next-text"],
    }
    store = MessageStore(database)
    firsts = await store.conversations(FIRST, ListQuery())
    assert [c.updated_at for c in firsts.items] == [at(1)]  # its own latest message
    assert [m.message_sid for m in await store.all_messages(NEXT)] == ["SM-next", "SM-next-text"]
    info = await database["messages"].index_information()
    assert info["conversation_owner_unique"]["unique"] is True
    assert "conversation_unique" not in info


async def test_documents_without_an_owner_get_the_owner_of_the_number_then(database: Db) -> None:
    before = START - timedelta(days=3)  # no registration covers it
    await before_migration_5(
        database,
        conversation(ALICE, message("SM-a1", at(2)), message("SM-a2", TAKEN_UP)),
        conversation(BOB, message("SM-b", before)),  # nobody's: kept, under no owner
        conversation("+15550003333", message("SM-c", before), userId=FIRST),  # stays its owner's
    )
    await migrations.upgrade(database)
    assert await shape(database) == {
        (FIRST, ALICE): ["SM-a1"],
        (NEXT, ALICE): ["SM-a2"],
        ("", BOB): ["SM-b"],
        (FIRST, "+15550003333"): ["SM-c"],
    }


async def test_twice_and_half_migrated_neither_lose_nor_duplicate(database: Db) -> None:
    # The run stopped after it copied one message to the next owner's document and before it
    # took it out of the first owner's.
    copied = conversation(ALICE, MIXED["messages"][1], userId=NEXT)
    await before_migration_5(database, MIXED, copied, half_way=True)
    await key_by_owner(database)
    await migrations.upgrade(database)
    await key_by_owner(database)
    assert await shape(database) == {
        (FIRST, ALICE): ["SM-first"],
        (NEXT, ALICE): ["SM-next", "SM-next-text"],
    }


async def test_downgrade_merges_the_owners_back_and_upgrade_splits_again(database: Db) -> None:
    await before_migration_5(database, MIXED)
    await migrations.upgrade(database)
    await migrations.downgrade(database, 4)
    assert await shape(database) == {(FIRST, ALICE): ["SM-first", "SM-next", "SM-next-text"]}
    info = await database["messages"].index_information()
    assert "conversation_owner_unique" not in info
    assert info["conversation_unique"]["unique"] is True
    await migrations.upgrade(database)
    assert await shape(database) == {
        (FIRST, ALICE): ["SM-first"],
        (NEXT, ALICE): ["SM-next", "SM-next-text"],
    }
