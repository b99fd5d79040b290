"""Texts while the database is away: the texter is answered within Twilio's patience and asked
to send the message again, and the message, which could not be stored, is logged in full."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.database_outage import DatabaseOutage
from tests.voice_server.conftest import logged
from tests.voice_server.sms.sms_line import EchoingLanguageModel, open_sms_line, sms_form
from tests.voice_server.sms.test_sms import replies
from voice_server.sms.webhooks import OUTAGE_TEXT

ANSWER_WITHIN_S = 3.0


async def test_a_text_while_the_database_is_down_is_answered_and_logged_in_full(
    outage: DatabaseOutage, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    llm = EchoingLanguageModel()
    async with open_sms_line(outage.db, tmp_path, llm) as line:
        form = sms_form(line.number, "Can I move my booking to Friday?", "SM1")
        await outage.begin()
        started = time.monotonic()
        response = await line.post("/twilio/sms", form)
        took = time.monotonic() - started
        await outage.end()

        assert took < ANSWER_WITHIN_S
        assert replies(response) == [OUTAGE_TEXT]
        (entry,) = logged(caplog, "the database is unreachable")
        assert entry["level"] == "error"
        assert entry["form"] == form
        assert (await line.conversation(), llm.requests, line.twilio.sent) == ([], [], [])


@pytest.mark.parametrize("outage", ["frozen"], indirect=True)
async def test_a_delivery_status_while_the_database_is_down_is_logged(
    outage: DatabaseOutage, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_sms_line(outage.db, tmp_path, EchoingLanguageModel()) as line:
        form = {"MessageSid": "SM2", "MessageStatus": "delivered", "From": line.number}
        form |= {"To": "+15550100199", "AccountSid": "AC" + "0" * 32}
        await outage.begin()
        started = time.monotonic()
        response = await line.post("/twilio/sms-status", form)
        took = time.monotonic() - started
        await outage.end()

    assert (response.status_code, took < ANSWER_WITHIN_S) == (204, True)
    (entry,) = logged(caplog, "the database is unreachable")
    assert entry["form"] == form
