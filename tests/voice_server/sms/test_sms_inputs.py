"""POST /twilio/sms with media and odd input: each has a defined, logged outcome and valid TwiML."""

from __future__ import annotations

from pathlib import Path

import pytest

from stores.agents import AgentStore, AgentUpdate
from stores.phone_numbers import PhoneNumberStore, PhoneNumberUpdate
from tests.voice_server.conftest import logged
from tests.voice_server.sms.sms_line import (
    DEPLOYMENT_TOKEN,
    Db,
    EchoingLanguageModel,
    open_sms_line,
    sms_form,
)
from tests.voice_server.sms.test_sms import replies
from voice_server.providers import local
from voice_server.security.secret_key import secret_box
from voice_server.seed import DEMO_USER
from voice_server.settings import Settings


async def test_mms_is_stored_with_its_media_and_answered(database: Db, tmp_path: Path) -> None:
    llm = EchoingLanguageModel()
    media = {
        "NumMedia": "2",
        "MediaUrl0": "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
        "MediaContentType0": "image/jpeg",
        "MediaUrl1": "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME2",
        "MediaContentType1": "application/pdf",
    }
    async with open_sms_line(database, tmp_path, llm) as line:
        answer = replies(await line.text("", "MM1", **media))
        (inbound, _) = await line.conversation()
    assert answer == ["user: [2 attachment(s) you cannot see: image/jpeg, application/pdf]"]
    assert inbound.media is not None
    assert [(m.url, m.content_type) for m in inbound.media] == [
        (media["MediaUrl0"], "image/jpeg"),
        (media["MediaUrl1"], "application/pdf"),
    ]


async def test_an_empty_message_is_stored_not_answered(
    database: Db, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    llm = EchoingLanguageModel()
    async with open_sms_line(database, tmp_path, llm) as line:
        assert replies(await line.text("   ", "SMempty")) == []
        stored = await line.conversation()
    assert [m.message_sid for m in stored] == ["SMempty"]
    assert llm.requests == []
    assert logged(caplog, "an empty SMS")[0]["message_sid"] == "SMempty"


async def test_a_very_long_message_is_cut_and_the_reply_fits_an_sms(
    database: Db, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    body = "This sentence is exactly forty-one chars. " * 60  # 2460 characters
    async with open_sms_line(database, tmp_path, EchoingLanguageModel()) as line:
        (answer,) = replies(await line.text(body, "SMlong"))
        inbound, reply = await line.conversation()
    assert inbound.body == body[:1600]
    assert len(answer) <= 1600
    assert answer.endswith("forty-one chars.")  # cut after a whole sentence
    assert reply.body == answer
    assert logged(caplog, "longer than an SMS")[0]["chars"] == len(body)


@pytest.mark.parametrize(
    "case",  # (To, From, what is logged); To None: the demo number
    [
        ("+15550109999", "+15550100199", "not registered"),
        ("not-a-number", "+15550100199", "not registered"),
        (None, "ACME", "not a phone number"),  # an alphanumeric sender ID
        (None, "12345", "not a phone number"),  # a short code
    ],
)
async def test_unknown_numbers_and_senders_are_neither_stored_nor_answered(
    database: Db,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    case: tuple[str | None, str, str],
) -> None:
    to, sender, event = case
    llm = EchoingLanguageModel()
    async with open_sms_line(database, tmp_path, llm) as line:
        form = sms_form(to or line.number, "Hi", "SModd", From=sender)
        token = DEPLOYMENT_TOKEN if to else None  # unknown numbers: the deployment's token
        assert replies(await line.post("/twilio/sms", form, token)) == []
    assert await database["messages"].count_documents({}) == 0
    assert llm.requests == []
    assert logged(caplog, event)[0]["message_sid"] == "SModd"


@pytest.mark.parametrize("switched_off", ["number", "agent"])
async def test_an_inactive_number_or_agent_stores_without_answering(
    database: Db, tmp_path: Path, caplog: pytest.LogCaptureFixture, switched_off: str
) -> None:
    llm = EchoingLanguageModel()
    async with open_sms_line(database, tmp_path, llm) as line:
        if switched_off == "number":
            numbers = PhoneNumberStore(database, secret_box(Settings(data_dir=tmp_path)))
            number = await numbers.find_registered(line.number)
            assert number is not None
            await numbers.update(DEMO_USER, number.id, PhoneNumberUpdate(isActive=False))
        else:
            change = AgentUpdate(active=False)
            await AgentStore(database).update(DEMO_USER, line.demo.agent_id, change)
        assert replies(await line.text("Hi", "SMoff")) == []
        stored = await line.conversation()
    assert [m.message_sid for m in stored] == ["SMoff"]
    assert llm.requests == []
    assert logged(caplog, "stored, not answered")


async def test_an_outgoing_agent_answers_texts_when_no_incoming_one_does(
    database: Db, tmp_path: Path
) -> None:
    async with open_sms_line(database, tmp_path, EchoingLanguageModel()) as line:
        change = AgentUpdate(direction="outgoing")
        await AgentStore(database).update(DEMO_USER, line.demo.agent_id, change)
        assert replies(await line.text("Hi", "SMout")) == ["user: Hi"]


async def test_a_speech_to_speech_agent_answers_texts_with_the_text_model(
    database: Db, tmp_path: Path
) -> None:
    """A Realtime inferenceModel cannot answer a text: SPEECH_AGENT_TEXT_MODEL does."""
    llm = EchoingLanguageModel()
    async with open_sms_line(database, tmp_path, llm) as line:
        change = AgentUpdate(inferenceModel="gpt-realtime-2")
        await AgentStore(database).update(DEMO_USER, line.demo.agent_id, change)
        assert replies(await line.text("Hi", "SMspeech")) == ["user: Hi"]
        stored = await line.conversation()
    assert [request.model for request in llm.requests] == [local.LLM_MODEL]
    assert stored[-1].model == local.LLM_MODEL


async def test_unsigned_or_sidless_requests_are_refused(database: Db, tmp_path: Path) -> None:
    async with open_sms_line(database, tmp_path, EchoingLanguageModel()) as line:
        form = sms_form(line.number, "Hi", "")
        assert (await line.post("/twilio/sms", form)).status_code == 400
        forged = await line.post("/twilio/sms", sms_form(line.number, "Hi", "SMx"), "wrong")
        assert forged.status_code == 403
    assert await database["messages"].count_documents({}) == 0
