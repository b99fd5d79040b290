"""What we hand Twilio is text XML 1.0 can carry: every TwiML answer parses, whatever came in, and
texts sent through the REST API are stripped of the same characters. Against the real server."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stores.calls import CallStore
from tests.voice_server.conftest import Server, logged
from tests.voice_server.sms.sms_line import Db, EchoingLanguageModel, as_user, open_sms_line
from tests.voice_server.sms.test_sms import replies
from tests.voice_server.sms.test_sms_outbound import number_id
from tests.voice_server.telephony.test_voice_webhooks import call_form, post_signed
from voice_server.twilio_api.twiml import xml_safe

# What the issue found breaking the SMS answer, and the edges of what XML 1.0 allows.
UNSAFE = ["\x01", "\x0b", "\x00", "\ufffe", "\x1f", "\uffff", "\ud800"]
FORM_UNSAFE = UNSAFE[:-1]  # a lone surrogate cannot be sent as UTF-8 at all


# Written as references, as a parser would otherwise normalise these line ends and spaces.
ENTITIES = {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}


@given(st.text())
def test_any_text_made_safe_parses_back_as_itself(text: str) -> None:
    safe = escape(xml_safe(text), ENTITIES)
    parsed = ET.fromstring(f'<a b="{safe}">{safe}</a>')
    assert (parsed.text or "", parsed.attrib["b"]) == (xml_safe(text), xml_safe(text))


@pytest.mark.parametrize("char", UNSAFE)
def test_what_xml_cannot_carry_is_dropped_and_the_rest_kept(char: str) -> None:
    assert xml_safe(f"a{char}b\t\n\r\u00e9\ud7ff\ue000\ufffd\U0001f600") == (
        "ab\t\n\r\u00e9\ud7ff\ue000\ufffd\U0001f600"
    )


@pytest.mark.parametrize("char", FORM_UNSAFE)
async def test_an_sms_reply_is_well_formed_whatever_the_body(
    database: Db, tmp_path: Path, char: str
) -> None:
    async with open_sms_line(database, tmp_path, EchoingLanguageModel()) as line:
        answer = replies(await line.text(f"a{char}b", "SMctl"))  # parses, or fails here
    assert answer == ["user: ab"]


@pytest.mark.parametrize(
    "call_sid", [f"CA{char}" + "d" * 31 for char in FORM_UNSAFE] + ["", "CA1", "CA" + "d." * 16]
)
async def test_a_call_sid_twilio_would_never_send_is_refused(
    server: Server, call_sid: str, caplog: pytest.LogCaptureFixture
) -> None:
    response = await post_signed(server, "/twilio/voice", call_form(server.line.number, call_sid))

    assert response.status_code == 400
    assert "not a Twilio call SID" in response.text
    assert logged(caplog, "voice webhook without a Twilio CallSid")
    assert await CallStore(server.db).get(call_sid) is None


async def test_a_reply_sent_through_the_rest_api_is_stripped(database: Db, tmp_path: Path) -> None:
    gate = asyncio.Event()
    async with open_sms_line(database, tmp_path, EchoingLanguageModel(gate), budget_s=0.2) as line:
        assert replies(await line.text("a\x01b\x00c\ufffe", "SMslow")) == []
        gate.set()
        (sent,) = await line.twilio.wait_for(1)
    assert sent.form["Body"] == "user: abc"


async def test_a_text_sent_through_the_api_is_stripped(database: Db, tmp_path: Path) -> None:
    async with open_sms_line(database, tmp_path, EchoingLanguageModel()) as line:
        body = {"fromPhoneNumberId": await number_id(database, tmp_path, line.number),
                "to": "+15550100199", "body": "We open\x00 at 9\x0b."}  # fmt: skip
        async with as_user(line, "demo-user") as http:
            response = await http.post("/messages", json=body)
        (sent,) = await line.twilio.wait_for(1)
    assert response.status_code == 201, response.text
    assert sent.form["Body"] == "We open at 9."
