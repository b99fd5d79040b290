"""POST /twilio/sms against the real server: history, the 24-hour window, once per MessageSid,
the REST path for a slow LLM, the fallback for a failing one."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from stores.documents import utc_now
from stores.messages import MessageStore, NewMessage
from tests.voice_server.conftest import logged
from tests.voice_server.sms.sms_line import (
    Db,
    EchoingLanguageModel,
    open_sms_line,
)
from voice_server.seed import DEMO_CALLER, DEMO_USER
from voice_server.sms.reply import FALLBACK_TEXT


def replies(response: httpx.Response) -> list[str]:
    """The texts of the TwiML answer's `<Message>`s (none for `<Response/>`)."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.text)
    assert root.tag == "Response"
    return [message.text or "" for message in root.findall("Message")]


async def test_three_messages_carry_the_conversation_to_the_llm(
    database: Db, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    llm = EchoingLanguageModel()
    async with open_sms_line(database, tmp_path, llm) as line:
        first = replies(await line.text("Hi there", "SM1"))
        second = replies(await line.text("Are you open today?", "SM2"))
        third = replies(await line.text("Thanks!", "SM3"))
        stored = await line.conversation()

    assert first == ["user: Hi there"]
    assert second == ["user: Hi there | assistant: user: Hi there | user: Are you open today?"]
    assert third == [f"user: Hi there | assistant: {first[0]} | user: Are you open today? | "
                     f"assistant: {second[0]} | user: Thanks!"]  # fmt: skip
    system = llm.requests[-1].messages[0]
    assert (system.role, system.content.startswith("You are a friendly receptionist")) == (
        "system",
        True,
    )
    assert [(m.message_sid, m.role, m.direction) for m in stored] == [
        ("SM1", "user", "inbound"), ("SM1.reply", "assistant", "outbound"),
        ("SM2", "user", "inbound"), ("SM2.reply", "assistant", "outbound"),
        ("SM3", "user", "inbound"), ("SM3.reply", "assistant", "outbound"),
    ]  # fmt: skip
    assert len({m.conversation_id for m in stored}) == 1
    reply = stored[-1]
    assert (reply.body, reply.model) == (third[0], "stand-in")
    assert reply.usage == {"prompt_tokens": 6, "completion_tokens": 1}
    assert reply.metrics is not None
    assert set(reply.metrics) == {"response_ms", "first_token_ms"}
    assert [e["message_sid"] for e in logged(caplog, "SMS answered inline")] == [
        "SM1",
        "SM2",
        "SM3",
    ]
    assert line.twilio.sent == []  # all inline


async def test_only_the_last_24_hours_reach_the_llm(database: Db, tmp_path: Path) -> None:
    llm = EchoingLanguageModel()
    async with open_sms_line(database, tmp_path, llm) as line:
        store, now = MessageStore(database), utc_now()
        for sid, hours, body in (("SMold", 25, "last week's question"), ("SMrecent", 23, "hi")):
            await store.create_message(
                NewMessage(agent_id=line.number, user_number=DEMO_CALLER, userId=DEMO_USER,
                           message_sid=sid, body=body, conversation_id=f"conv-{sid}",
                           timestamp=now - timedelta(hours=hours))
            )  # fmt: skip
        assert replies(await line.text("still there?", "SMnew")) == [
            "user: hi | user: still there?"
        ]
        stored = {m.message_sid: m for m in await line.conversation()}
    assert stored["SMnew"].conversation_id == "conv-SMrecent"  # within a day: same conversation
    assert stored["SMnew.reply"].conversation_id == "conv-SMrecent"


async def test_a_quiet_day_starts_a_new_conversation(database: Db, tmp_path: Path) -> None:
    async with open_sms_line(database, tmp_path, EchoingLanguageModel()) as line:
        await MessageStore(database).create_message(
            NewMessage(agent_id=line.number, user_number=DEMO_CALLER, userId=DEMO_USER,
                       message_sid="SMold", body="old", conversation_id="conv-old",
                       timestamp=utc_now() - timedelta(days=2))
        )  # fmt: skip
        assert replies(await line.text("hello again", "SMnew")) == ["user: hello again"]
        stored = {m.message_sid: m for m in await line.conversation()}
    assert stored["SMnew"].conversation_id not in ("", "conv-old")


async def test_concurrent_and_repeated_deliveries_are_stored_and_answered_once(
    database: Db, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    llm = EchoingLanguageModel()
    async with open_sms_line(database, tmp_path, llm) as line:
        answers = await asyncio.gather(*(line.text("Hello?", "SMdup") for _ in range(5)))
        later = await line.text("Hello?", "SMdup")
        stored = await line.conversation()
    assert sorted(len(replies(a)) for a in answers) == [0, 0, 0, 0, 1]
    assert replies(later) == []
    assert [m.message_sid for m in stored] == ["SMdup", "SMdup.reply"]
    assert len(llm.requests) == 1
    assert len(logged(caplog, "a repeated delivery is not answered again")) == 5


async def test_a_slow_llm_replies_through_the_rest_api(database: Db, tmp_path: Path) -> None:
    gate = asyncio.Event()
    llm = EchoingLanguageModel(gate=gate)
    async with open_sms_line(database, tmp_path, llm, budget_s=0.2) as line:
        assert replies(await line.text("Tell me everything", "SMslow")) == []
        assert line.twilio.sent == []
        gate.set()
        (sent,) = await line.twilio.wait_for(1)
    # Stopping the app waits for the sends that finish after their webhook answered.
    stored = await line.conversation()
    assert sent.auth == ("AC" + "0" * 32, line.demo.auth_token)  # the number's own credentials
    assert sent.form["From"] == line.number
    assert sent.form["To"] == DEMO_CALLER
    assert sent.form["Body"] == "user: Tell me everything"
    assert sent.form["StatusCallback"] == f"{line.base_url}/twilio/sms-status"
    reply = stored[-1]
    assert (reply.message_sid, reply.status, reply.model) == ("SM" + "0" * 31 + "1", "queued",
                                                              "stand-in")  # fmt: skip


async def test_a_failing_llm_answers_with_the_fallback_inline(database: Db, tmp_path: Path) -> None:
    async with open_sms_line(database, tmp_path, EchoingLanguageModel(fail=True)) as line:
        assert replies(await line.text("Hi", "SMfail")) == [FALLBACK_TEXT]
        reply = (await line.conversation())[-1]
    assert (reply.body, reply.model) == (FALLBACK_TEXT, None)


async def test_a_slow_then_failing_llm_sends_the_fallback(database: Db, tmp_path: Path) -> None:
    gate = asyncio.Event()
    llm = EchoingLanguageModel(gate=gate, fail=True)
    async with open_sms_line(database, tmp_path, llm, budget_s=0.2) as line:
        assert replies(await line.text("Hi", "SMlate")) == []
        gate.set()
        (sent,) = await line.twilio.wait_for(1)
    assert [m.body for m in await line.conversation()] == ["Hi", FALLBACK_TEXT]
    assert sent.form["Body"] == FALLBACK_TEXT


async def test_a_reply_twilio_refuses_is_stored_as_failed(database: Db, tmp_path: Path) -> None:
    gate = asyncio.Event()
    llm = EchoingLanguageModel(gate=gate)
    async with open_sms_line(database, tmp_path, llm, budget_s=0.2) as line:
        line.twilio.refusal = (21610, "Attempt to send to unsubscribed recipient")
        assert replies(await line.text("Hi", "SMstop")) == []
        gate.set()
        await line.twilio.wait_for(1)
    reply = (await line.conversation())[-1]
    assert (reply.message_sid, reply.status) == ("SMstop.reply", "failed")
