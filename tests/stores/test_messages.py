"""The messages store: seed 000's operations, Twilio retries, and old-shape documents."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from stores.messages import MessageStore, NewMessage
from tests.stores.factories import START

Db = AsyncDatabase[dict[str, Any]]
AGENT, ALICE, BOB = "+15551230001", "+15550001111", "+15550002222"


def sms(sid: str, user: str = ALICE, minutes: int = 0, conversation: str = "c1") -> NewMessage:
    return NewMessage(
        agent_id=AGENT,
        user_number=user,
        userId="owner",
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
    assert await store.conversation_exists(AGENT, ALICE) is False
    assert await store.create_message(sms("SM1")) is True
    assert await store.create_message(sms("SM1")) is False  # Twilio's retry
    reply = sms("SM2", minutes=1).model_copy(update={"model": "gpt-4o-mini"})
    assert await store.create_outbound_message(reply) is True
    assert await store.create_message(sms("SM3", user="(555) 000-2222")) is True
    assert await database["messages"].count_documents({}) == 2
    messages = await store.conversation_messages(AGENT, ALICE)
    assert [(m.message_sid, m.role, m.direction) for m in messages] == [
        ("SM1", "user", "inbound"),
        ("SM2", "assistant", "outbound"),
    ]
    assert messages[1].model == "gpt-4o-mini"
    assert await store.conversation_exists("555-123-0001", ALICE) is True
    assert await store.conversation_id(AGENT, ALICE) == "c1"


async def test_last_24_hours(database: Db) -> None:
    store = MessageStore(database)
    await store.create_message(sms("SM-old", minutes=0))
    await store.create_message(sms("SM-new", minutes=60 * 24))
    now = START + timedelta(hours=25)
    recent = await store.last_24h_messages(AGENT, ALICE, now)
    assert [m.message_sid for m in recent] == ["SM-new"]


async def test_old_shape_documents_still_read(database: Db) -> None:
    await database["messages"].insert_one(
        {
            "agent_id": AGENT,
            "messages": [old_message("SM-a", ALICE, 0), old_message("SM-b", BOB, 1)],
        }
    )
    store = MessageStore(database)
    await store.create_message(sms("SM-c", minutes=2, conversation="new"))
    alices = await store.conversation_messages(AGENT, ALICE)
    assert [m.message_sid for m in alices] == ["SM-a", "SM-c"]
    assert await store.conversation_id(AGENT, ALICE) == "new"
    assert await store.conversation_exists(AGENT, BOB) is True
    by_agent = await store.messages_by_agent(AGENT)
    assert [(m.message_sid, m.user_number) for m in by_agent] == [
        ("SM-a", ALICE),
        ("SM-b", BOB),
        ("SM-c", ALICE),
    ]


async def test_all_messages_of_an_owner(database: Db) -> None:
    store = MessageStore(database)
    await store.create_message(sms("SM1"))
    await store.create_message(sms("SM2", user=BOB, minutes=1, conversation="c2"))
    everything = await store.all_messages("owner")
    assert [m.message_sid for m in everything] == ["SM1", "SM2"]
    assert [m.message_sid for m in await store.all_messages("owner", "c2")] == ["SM2"]
    assert await store.all_messages("someone-else") == []
