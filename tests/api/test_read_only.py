"""/api/calls, /api/conversations and /api/messages: lists, reads and their errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stores.calls import CallStore, TranscriptEntry
from stores.messages import MessageStore, NewMessage
from tests.api.conftest import Api, data, error, failing_fields
from tests.stores.factories import START, call


def sms(sid: str, user: str, minutes: int, conversation: str = "c1") -> NewMessage:
    return NewMessage(
        agent_id="+15551230001",
        user_number=user,
        userId="alice",
        message_sid=sid,
        body=f"message {sid}",
        conversation_id=conversation,
        timestamp=START + timedelta(minutes=minutes),
    )


async def test_calls_list_without_transcripts_and_read_with_them(api: Api) -> None:
    calls = CallStore(api.db)
    older = await calls.create(call("CA1", userId="alice"))
    newer = await calls.create(call("CA2", userId="alice", start_time=START + timedelta(hours=1)))
    entry = TranscriptEntry(role="user", text="hello", timestamp=datetime.now(UTC))
    await calls.append_transcript("CA1", entry)
    await calls.finalize("CA2", ended_at=START + timedelta(hours=2), reason="stop")
    listed = data(await api.alice.get("/calls", params={"sort": "-start_time"}))
    assert [c["call_sid"] for c in listed] == ["CA2", "CA1"]
    assert all("transcript" not in c for c in listed)
    completed = data(await api.alice.get("/calls", params={"status": "completed"}))
    assert [c["id"] for c in completed] == [newer.id]
    read = data(await api.alice.get(f"/calls/{older.id}"))
    assert [e["text"] for e in read["transcript"]] == ["hello"]
    assert error(await api.alice.get("/calls/" + "0" * 24), 404)
    assert failing_fields(await api.alice.get("/calls", params={"status": "ringing"})) == {
        "query.status"
    }


async def test_conversations_and_messages(api: Api) -> None:
    store = MessageStore(api.db)
    await store.create_message(sms("SM1", "+15550001111", 0))
    await store.create_outbound_message(sms("SM2", "+15550001111", 1))
    await store.create_message(sms("SM3", "+15550002222", 2, conversation="c2"))
    listed = data(await api.alice.get("/conversations"))
    assert [c["user_number"] for c in listed] == ["+15550002222", "+15550001111"]
    assert [m["message_sid"] for m in listed[1]["messages"]] == ["SM2"]  # the latest only
    one = data(await api.alice.get(f"/conversations/{listed[1]['id']}"))
    assert [(m["message_sid"], m["role"]) for m in one["messages"]] == [
        ("SM1", "user"),
        ("SM2", "assistant"),
    ]
    filtered = await api.alice.get("/conversations", params={"user_number": "(555) 000-2222"})
    assert [c["id"] for c in data(filtered)] == [listed[0]["id"]]
    messages = data(await api.alice.get("/messages", params={"limit": 2}))
    assert [m["message_sid"] for m in messages] == ["SM3", "SM2"]
    oldest = data(await api.alice.get("/messages", params={"sort": "timestamp", "offset": 1}))
    assert [m["message_sid"] for m in oldest] == ["SM2", "SM3"]
    by_conversation = data(await api.alice.get("/messages", params={"conversation_id": "c2"}))
    assert [m["user_number"] for m in by_conversation] == ["+15550002222"]
    assert error(await api.alice.get("/conversations/nope"), 404)
