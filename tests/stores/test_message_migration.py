"""Migration 2 (seed 000): old one-per-agent `messages` documents split per conversation, on
old, new and mixed data, interrupted half-way, run twice, and undone."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from stores import migrations
from stores.message_migration import merge_conversations, split_conversations
from stores.messages import MessageStore
from tests.stores.test_messages import AGENT, ALICE, BOB, OWNER, old_message, sms

Db = AsyncDatabase[dict[str, Any]]
OTHER_AGENT = "+15551230002"


async def insert_old(database: Db, agent: str = AGENT, **fields: Any) -> None:
    messages = [
        old_message("SM-a1", ALICE, 0),
        old_message("SM-b1", BOB, 1),
        old_message("SM-a2", ALICE, 2),
    ]
    messages = [{**m, "agent_number": agent, "message_sid": f"{agent}-{m['message_sid']}"}
                for m in messages]  # fmt: skip
    await database["messages"].insert_one({"agent_id": agent, "messages": messages, **fields})


async def shape(database: Db) -> dict[tuple[str, str], list[str]]:
    """Each document's key and its message sids; fails on a leftover old-shape document."""
    found = {}
    for document in await database["messages"].find({}).to_list(None):
        assert all("user_number" not in m for m in document["messages"])
        found[document["agent_id"], document["user_number"]] = [
            m["message_sid"] for m in document["messages"]
        ]
    return found


EXPECTED = {
    (AGENT, ALICE): [f"{AGENT}-SM-a1", f"{AGENT}-SM-a2"],
    (AGENT, BOB): [f"{AGENT}-SM-b1"],
}


async def test_old_data_is_split_without_loss(database: Db) -> None:
    await database["registered_phone_numbers"].insert_one(
        {"phoneNumber": AGENT, "userId": OWNER, "isDeleted": False}
    )
    await insert_old(database)
    await split_conversations(database)
    assert await shape(database) == EXPECTED
    # The owner comes from the registered number; the API now sees the conversations.
    assert await database["messages"].count_documents({"userId": OWNER}) == 2
    assert len(await MessageStore(database).all_messages(OWNER)) == 3


async def test_new_data_is_left_alone(database: Db) -> None:
    store = MessageStore(database)
    await store.create_message(sms("SM1"))
    before = await database["messages"].find({}).to_list(None)
    await split_conversations(database)
    assert await database["messages"].find({}).to_list(None) == before


async def test_mixed_data_merges_into_the_existing_conversation(database: Db) -> None:
    await MessageStore(database).create_message(sms("SM-new", minutes=5))
    await insert_old(database, userId=OWNER)
    await insert_old(database, agent=OTHER_AGENT, userId=OWNER)
    await split_conversations(database)
    after = await shape(database)
    assert after[AGENT, ALICE] == ["SM-new", *EXPECTED[AGENT, ALICE]]
    assert after[AGENT, BOB] == EXPECTED[AGENT, BOB]
    assert set(after) == {*EXPECTED, (OTHER_AGENT, ALICE), (OTHER_AGENT, BOB)}
    messages = await MessageStore(database).conversation_messages(OWNER, AGENT, ALICE)
    assert [m.message_sid for m in messages] == [*EXPECTED[AGENT, ALICE], "SM-new"]


async def test_twice_and_half_migrated_neither_lose_nor_duplicate(database: Db) -> None:
    await insert_old(database, userId=OWNER)
    # Half-migrated: a run pushed alice's first message, then stopped before deleting.
    old = await database["messages"].find_one({})
    assert old is not None
    first = {k: v for k, v in old["messages"][0].items() if k != "user_number"}
    await database["messages"].insert_one(
        {"agent_id": AGENT, "user_number": ALICE, "userId": OWNER, "messages": [first]}
    )
    await split_conversations(database)
    await split_conversations(database)
    assert await shape(database) == EXPECTED
    sids = [sid for sids in (await shape(database)).values() for sid in sids]
    assert max(Counter(sids).values()) == 1


async def test_downgrade_merges_back_and_upgrade_splits_again(database: Db) -> None:
    await insert_old(database, userId=OWNER)
    await split_conversations(database)
    await merge_conversations(database)
    documents = await database["messages"].find({}).to_list(None)
    assert len(documents) == 1
    assert "user_number" not in documents[0]
    assert sorted(m["user_number"] for m in documents[0]["messages"]) == [ALICE, ALICE, BOB]
    await split_conversations(database)
    assert await shape(database) == EXPECTED


async def test_the_runner_splits_before_the_unique_index(database: Db) -> None:
    await migrations.downgrade(database, 1)
    await insert_old(database, userId=OWNER)
    await insert_old(database, userId=OWNER)  # two old documents of one agent
    assert [m.version for m in await migrations.upgrade(database)][:2] == [2, 3]
    assert await shape(database) == EXPECTED
    info = await database["messages"].index_information()
    assert info["conversation_owner_unique"]["unique"] is True
