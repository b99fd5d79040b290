"""POST /api/messages (texts sent from a user's number), POST /twilio/sms-status (their delivery
statuses) and the conversations the UI reads, against the real server and the fake Twilio."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from stores.phone_numbers import PhoneNumberStore, PhoneNumberUpdate
from tests.api.conftest import data, error, failing_fields
from tests.voice_server.sms.sms_line import (
    ACCOUNT_SID,
    Db,
    EchoingLanguageModel,
    SmsLine,
    as_user,
    open_sms_line,
    sms_form,
)
from voice_server.security.secret_key import secret_box
from voice_server.seed import DEMO_CALLER, DEMO_USER
from voice_server.settings import Settings

OTHER_CALLER = "+15550100188"


async def number_id(database: Db, tmp_path: Path, number: str) -> str:
    found = await numbers(database, tmp_path).find_registered(number)
    assert found is not None
    return found.id


def numbers(database: Db, tmp_path: Path) -> PhoneNumberStore:
    return PhoneNumberStore(database, secret_box(Settings(data_dir=tmp_path)))


async def status(line: SmsLine, sid: str, value: str, **fields: str) -> httpx.Response:
    form = {"MessageSid": sid, "MessageStatus": value, "From": line.number, "To": DEMO_CALLER,
            "AccountSid": ACCOUNT_SID}  # fmt: skip
    return await line.post("/twilio/sms-status", form | fields)


async def test_a_text_sent_through_the_api_joins_the_conversation(
    database: Db, tmp_path: Path
) -> None:
    async with open_sms_line(database, tmp_path, EchoingLanguageModel()) as line:
        await line.text("Hi", "SM1")
        body = {"fromPhoneNumberId": await number_id(database, tmp_path, line.number),
                "to": "(555) 010-0199", "body": "We open at 9 tomorrow."}  # fmt: skip
        async with as_user(line, DEMO_USER) as http:
            sent = data(await http.post("/messages", json=body), 201)
        (request,) = line.twilio.sent
        stored = await line.conversation()
    assert request.auth == ("AC" + "0" * 32, line.demo.auth_token)
    assert (request.form["From"], request.form["To"]) == (line.number, DEMO_CALLER)
    assert request.form["Body"] == "We open at 9 tomorrow."
    assert request.form["StatusCallback"] == f"{line.base_url}/twilio/sms-status"
    assert sent["message_sid"] == "SM" + "0" * 31 + "1"
    assert (sent["direction"], sent["status"], sent["user_number"]) == (
        "outbound",
        "queued",
        DEMO_CALLER,
    )
    assert [m.message_sid for m in stored] == ["SM1", "SM1.reply", sent["message_sid"]]
    assert {m.conversation_id for m in stored} == {sent["conversation_id"]}


async def test_delivery_statuses_are_recorded_and_never_go_back(
    database: Db, tmp_path: Path
) -> None:
    async with open_sms_line(database, tmp_path, EchoingLanguageModel()) as line:
        body = {"fromPhoneNumberId": await number_id(database, tmp_path, line.number),
                "to": DEMO_CALLER, "body": "Your table is ready."}  # fmt: skip
        async with as_user(line, DEMO_USER) as http:
            first = data(await http.post("/messages", json=body), 201)["message_sid"]
            second = data(await http.post("/messages", json=body), 201)["message_sid"]
        answers = [
            await status(line, first, "sent"),
            await status(line, first, "delivered"),
            await status(line, first, "sent"),  # late, out of order
            await status(line, second, "undelivered", ErrorCode="30003"),
            await status(line, "SMunknown", "delivered"),
        ]
        unsigned = await line.post("/twilio/sms-status", {"MessageSid": first}, "wrong")
        stored = {m.message_sid: m for m in await line.conversation()}
    assert [a.status_code for a in answers] == [204] * 5
    assert unsigned.status_code == 403
    assert stored[first].status == "delivered"
    assert (stored[second].status, stored[second].error_code) == ("undelivered", "30003")


async def test_sending_is_refused_with_reasons(database: Db, tmp_path: Path) -> None:
    async with open_sms_line(database, tmp_path, EchoingLanguageModel()) as line:
        number = await number_id(database, tmp_path, line.number)
        ok: dict[str, Any] = {"fromPhoneNumberId": number, "to": DEMO_CALLER, "body": "Hi"}
        async with as_user(line, "someone-else") as stranger, as_user(line, DEMO_USER) as owner:
            theirs = await stranger.post("/messages", json=ok)
            bad = await owner.post("/messages", json=ok | {"to": "call me", "body": "x" * 1601})
            line.twilio.refusal = (21211, "The 'To' number is not a valid phone number.")
            refused = await owner.post("/messages", json=ok)
            line.twilio.refusal = None
            change = PhoneNumberUpdate(isActive=False)
            await numbers(database, tmp_path).update(DEMO_USER, number, change)
            inactive = await owner.post("/messages", json=ok)
    assert failing_fields(theirs) == {"body.fromPhoneNumberId"}
    assert failing_fields(bad) == {"body.to", "body.body"}
    assert "not a valid phone number" in error(refused, 502, "twilio_error")["message"]
    assert failing_fields(inactive) == {"body.fromPhoneNumberId"}
    assert await database["messages"].count_documents({}) == 0
    assert len(line.twilio.sent) == 1  # only the one Twilio refused reached it


@pytest.mark.parametrize("user_id", [DEMO_USER, "someone-else"])
async def test_the_ui_lists_an_agents_conversations_latest_first(
    database: Db, tmp_path: Path, user_id: str
) -> None:
    async with open_sms_line(database, tmp_path, EchoingLanguageModel()) as line:
        await line.text("first", "SM1")
        await line.post("/twilio/sms", sms_form(line.number, "other", "SM2", From=OTHER_CALLER))
        await line.text("again", "SM3")
        async with as_user(line, user_id) as http:
            listed = data(await http.get("/conversations", params={"agent_id": line.number}))
            read = await http.get(f"/conversations/{(await _conversation_id(line))}")
    if user_id != DEMO_USER:  # another user sees nothing of them
        assert listed == []
        assert error(read, 404)
        return
    assert [c["user_number"] for c in listed] == [DEMO_CALLER, OTHER_CALLER]
    assert [m["message_sid"] for m in listed[0]["messages"]] == ["SM3.reply"]  # latest only
    one = data(read)
    assert [m["message_sid"] for m in one["messages"]] == ["SM1", "SM1.reply", "SM3", "SM3.reply"]


async def _conversation_id(line: SmsLine) -> str:
    document = await line.db["messages"].find_one({"user_number": DEMO_CALLER})
    assert document is not None
    return str(document["_id"])
