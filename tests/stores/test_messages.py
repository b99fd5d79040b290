"""The messages store: seed 000's operations, Twilio retries, and old-shape documents."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from stores.messages import MessageStore, NewMessage
from tests.stores.factories import START

Db = AsyncDatabase[dict[str, Any]]
AGENT, ALICE, BOB = "+15551230001", "+15550001111", "+15550002222"
OWNER = "owner"


def sms(sid: str, user: str = ALICE, minutes: int = 0, conversation: str = "c1") -> NewMessage:
    return NewMessage(
        agent_id=AGENT,
        user_number=user,
        userId=OWNER,
        message_sid=sid,
        body=f"body {sid}",
        conversation_id=conversation,
        timestamp=START + timedelta(minutes=minutes),
    )


def old_message(sid: str, user: str, minutes: int) -> dict[str, Any]:
    return {
        "message_sid": sid,
        "user_number": user,
        "agent_number": AGENT,
        "body": f"old {sid}",
        "conversation_id": "old",
        "direction": "inbound",
        "role": "user",
        "timestamp": (START + timedelta(minutes=minutes)).isoformat(),
    }


async def test_one_document_per_conversation_and_retries_stored_once(database: Db) -> None:
    store = MessageStore(database)
    assert await store.conversation_exists(OWNER, AGENT, ALICE) is False
    assert await store.create_message(sms("SM1")) is True
    assert await store.create_message(sms("SM1")) is False  # Twilio's retry
    reply = sms("SM2", minutes=1).model_copy(update={"model": "gpt-4o-mini"})
    assert await store.create_outbound_message(reply) is True
    assert await store.create_message(sms("SM3", user="(555) 000-2222")) is True
    assert await database["messages"].count_documents({}) == 2
    messages = await store.conversation_messages(OWNER, AGENT, ALICE)
    assert [(m.message_sid, m.role, m.direction) for m in messages] == [
        ("SM1", "user", "inbound"),
        ("SM2", "assistant", "outbound"),
    ]
    assert messages[1].model == "gpt-4o-mini"
    assert await store.conversation_exists(OWNER, "555-123-0001", ALICE) is True
    assert await store.conversation_id(OWNER, AGENT, ALICE) == "c1"


async def test_last_24_hours(database: Db) -> None:
    store = MessageStore(database)
    await store.create_message(sms("SM-old", minutes=0))
    await store.create_message(sms("SM-new", minutes=60 * 24))
    now = START + timedelta(hours=25)
    recent = await store.last_24h_messages(OWNER, AGENT, ALICE, now)
    assert [m.message_sid for m in recent] == ["SM-new"]


async def test_old_shape_documents_still_read_by_their_owner(database: Db) -> None:
    await database["messages"].insert_one(
        {
            "agent_id": AGENT,
            "userId": OWNER,
            "messages": [old_message("SM-a", ALICE, 0), old_message("SM-b", BOB, 1)],
        }
    )
    # Nobody's (until migration 2 gives it an owner), and another owner's: not read.
    await database["messages"].insert_one(
        {"agent_id": AGENT, "messages": [old_message("SM-x", ALICE, 0)]}
    )
    await database["messages"].insert_one(
        {"agent_id": AGENT, "userId": "other", "messages": [old_message("SM-y", ALICE, 0)]}
    )
    store = MessageStore(database)
    await store.create_message(sms("SM-c", minutes=2, conversation="new"))
    alices = await store.conversation_messages(OWNER, AGENT, ALICE)
    assert [m.message_sid for m in alices] == ["SM-a", "SM-c"]
    assert await store.conversation_id(OWNER, AGENT, ALICE) == "new"
    assert await store.conversation_exists(OWNER, AGENT, BOB) is True
    by_agent = await store.messages_by_agent(OWNER, AGENT)
    assert [(m.message_sid, m.user_number) for m in by_agent] == [
        ("SM-a", ALICE),
        ("SM-b", BOB),
        ("SM-c", ALICE),
    ]


async def test_all_messages_of_an_owner(database: Db) -> None:
    store = MessageStore(database)
    await store.create_message(sms("SM1"))
    await store.create_message(sms("SM2", user=BOB, minutes=1, conversation="c2"))
    everything = await store.all_messages(OWNER)
    assert [m.message_sid for m in everything] == ["SM1", "SM2"]
    assert [m.message_sid for m in await store.all_messages(OWNER, "c2")] == ["SM2"]
    assert await store.all_messages("someone-else") == []


async def test_two_owners_of_one_number_have_conversations_of_their_own(database: Db) -> None:
    store = MessageStore(database)
    theirs = sms("SM-later", minutes=60).model_copy(update={"userId": "next-owner"})
    await store.create_outbound_message(sms("SM-first"))
    await store.create_outbound_message(theirs)
    assert await store.create_message(theirs) is False  # its sid is stored, in its owner's
    assert (
        await store.record_status("next-owner", AGENT, ALICE, "SM-first", status="failed") is False
    )
    assert await store.record_status(OWNER, AGENT, ALICE, "SM-later", status="failed") is False
    assert await database["messages"].count_documents({}) == 2
    for owner, sid in ((OWNER, "SM-first"), ("next-owner", "SM-later")):
        assert [m.message_sid for m in await store.conversation_messages(owner, AGENT, ALICE)] == [
            sid
        ]
        assert [m.message_sid for m in await store.messages_by_agent(owner, AGENT)] == [sid]
        assert [m.message_sid for m in await store.all_messages(owner)] == [sid]
        (message,) = await store.last_24h_messages(owner, AGENT, ALICE, START + timedelta(hours=2))
        assert (message.message_sid, message.status) == (sid, None)
    assert await store.conversation_exists("nobody", AGENT, ALICE) is False
