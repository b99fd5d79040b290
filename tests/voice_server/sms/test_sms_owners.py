"""A number that changes owner: the new owner's texts, history and statuses are its own, and the
old owner's conversation neither reaches the new owner's LLM nor gains the new owner's texts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import agent_body, data, make
from tests.voice_server.conftest import logged
from tests.voice_server.sms.sms_line import (
    DEPLOYMENT_TOKEN,
    Db,
    EchoingLanguageModel,
    SmsLine,
    as_user,
    open_sms_line,
    sms_form,
)
from tests.voice_server.sms.test_sms import replies
from voice_server.providers import local
from voice_server.seed import DEMO_CALLER, DEMO_USER

NEW_OWNER, NEW_TOKEN, NEW_ACCOUNT = "new-owner", "new-owner-token", "AC" + "1" * 32
SECRET = "my account number is 999-111"


async def hand_over(line: SmsLine) -> None:
    """The demo user deletes the number; another user registers it with its own token and
    agent (the demo user's agent stays on the number, active)."""
    async with as_user(line, DEMO_USER) as old:
        (number,) = data(await old.get("/phone-numbers"))
        data(await old.delete(f"/phone-numbers/{number['id']}"))
    async with as_user(line, NEW_OWNER) as new:
        fields = {"twilioAccountSid": NEW_ACCOUNT, "twilioAuthToken": NEW_TOKEN}
        await make(new, "/phone-numbers", {"phoneNumber": line.number, **fields})
        models = {"sttModel": local.STT_MODEL, "inferenceModel": local.LLM_MODEL,
                  "ttsModel": local.TTS_MODEL}  # fmt: skip
        prompt = "You are the new owner's agent."
        await make(new, "/agents", agent_body(line.number, systemPrompt=prompt, **models))


async def messages_of(line: SmsLine, user_id: str) -> list[dict[str, Any]]:
    async with as_user(line, user_id) as http:
        found: list[dict[str, Any]] = data(await http.get("/messages", params={"limit": 100}))
    return found


async def test_the_new_owner_of_a_number_has_a_conversation_of_its_own(
    database: Db, tmp_path: Path
) -> None:
    llm = EchoingLanguageModel()
    async with open_sms_line(database, tmp_path, llm) as line:
        assert replies(await line.text(SECRET, "SMold")) == [f"user: {SECRET}"]
        await hand_over(line)
        form = sms_form(line.number, "hello", "SMnew", AccountSid=NEW_ACCOUNT)
        answer = replies(await line.post("/twilio/sms", form, NEW_TOKEN))
        new_owners = await messages_of(line, NEW_OWNER)
        old_owners = await messages_of(line, DEMO_USER)

    (system, *history) = llm.requests[-1].messages
    assert system.content == "You are the new owner's agent."
    assert [(m.role, m.content) for m in history] == [("user", "hello")]
    assert answer == ["user: hello"]
    assert [m["message_sid"] for m in new_owners] == ["SMnew.reply", "SMnew"]
    assert new_owners[0]["usage"] == {"prompt_tokens": 2, "completion_tokens": 1}
    assert [m["message_sid"] for m in old_owners] == ["SMold.reply", "SMold"]
    assert all(m["user_number"] == DEMO_CALLER for m in new_owners + old_owners)


async def test_the_new_owners_sent_texts_and_their_statuses_stay_its_own(
    database: Db, tmp_path: Path
) -> None:
    async with open_sms_line(database, tmp_path, EchoingLanguageModel()) as line:
        await line.text(SECRET, "SMold")
        await hand_over(line)
        async with as_user(line, NEW_OWNER) as http:
            (number,) = data(await http.get("/phone-numbers"))
            body = {"fromPhoneNumberId": number["id"], "to": DEMO_CALLER, "body": "Welcome!"}
            sent = data(await http.post("/messages", json=body), 201)
            status = {"MessageSid": sent["message_sid"], "MessageStatus": "delivered",
                      "From": line.number, "To": DEMO_CALLER,
                      "AccountSid": NEW_ACCOUNT}  # fmt: skip
            assert (await line.post("/twilio/sms-status", status, NEW_TOKEN)).status_code == 204
            (conversation,) = data(await http.get("/conversations"))
        old_owners = await messages_of(line, DEMO_USER)

    assert conversation["userId"] == NEW_OWNER
    (latest,) = conversation["messages"]
    assert (latest["message_sid"], latest["status"]) == (sent["message_sid"], "delivered")
    assert sent["conversation_id"] not in {m["conversation_id"] for m in old_owners}
    assert [m["message_sid"] for m in old_owners] == ["SMold.reply", "SMold"]


async def test_a_status_for_a_number_nobody_holds_changes_nothing(
    database: Db, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_sms_line(database, tmp_path, EchoingLanguageModel()) as line:
        async with as_user(line, DEMO_USER) as http:
            (number,) = data(await http.get("/phone-numbers"))
            body = {"fromPhoneNumberId": number["id"], "to": DEMO_CALLER, "body": "Bye!"}
            sent = data(await http.post("/messages", json=body), 201)
            data(await http.delete(f"/phone-numbers/{number['id']}"))
        status = {"MessageSid": sent["message_sid"], "MessageStatus": "delivered",
                  "From": line.number, "To": DEMO_CALLER}  # fmt: skip
        answer = await line.post("/twilio/sms-status", status, DEPLOYMENT_TOKEN)
        (stored,) = await line.conversation()
    assert answer.status_code == 204
    assert stored.status == "queued"
    (warning,) = logged(caplog, "SMS status callback for a number nobody holds")
    assert (warning["message_sid"], warning["From"]) == (sent["message_sid"], line.number)
