"""Scheduled calls ring simulated callees through the Twilio stand-in, end to end: the real
server, its worker, the real `twilio` client, real audio on the media streams."""

from __future__ import annotations

from datetime import UTC, datetime

from stores.calls import CallStore
from stores.prompts import PromptStore, PromptUpdate
from tests.voice_server.call.scripted import Reply
from tests.voice_server.scheduling.line import (
    CALLEE,
    CALLEE_SAYS,
    OPENER,
    PROMPT,
    Db,
    calling_line,
    settled,
)
from voice_server.call.context import CALLEE_SILENT
from voice_server.seed import DEMO_USER
from voice_server.settings import Settings
from voice_server.simulation.callees import Callee
from voice_server.simulation.twilio_standin import TwilioStandin

MACHINE = Callee(kind="machine", greeting="Leave a message after the tone.", hang_up_after_s=8.0)
VOICEMAIL = "Hi Sam, this is the dental office: your appointment is Tuesday at ten."


async def test_an_ai_call_rings_runs_on_the_prompt_snapshot_and_is_recorded(
    database: Db, settings: Settings
) -> None:
    replies = (OPENER, Reply("Great, see you Tuesday. Goodbye!", end_call=True))
    async with calling_line(database, settings, *replies) as line:
        scheduled = await line.schedule()
        # The prompt changes after scheduling: the call keeps the text it was scheduled with.
        await PromptStore(database).update(
            DEMO_USER, line.prompt_id, PromptUpdate(content="Sell them a timeshare.")
        )
        (create,) = await line.standin.wait_for_creates(1, answered=True)
        assert create.call_sid is not None
        record = await line.standin.finished(create.call_sid)
        call_record = await settled(line, scheduled.id)

    assert create.get("From") == line.demo.number
    assert create.get("To") == "+15550100300"
    assert create.get("MachineDetection") == "DetectMessageEnd"
    assert create.get("AsyncAmd") == "true"
    named = f"?scheduled={scheduled.id}&destination=0"
    assert create.get("StatusCallback") == f"{line.base_url}/twilio/status{named}"
    assert create.get("Url") == f"{line.base_url}/twilio/outbound{named}"
    system = line.llm.requests[0].messages[0]
    assert (system.role, system.content) == ("system", PROMPT)
    assert [m.content for m in line.llm.requests[0].messages[1:]] == [CALLEE.first_words]

    destination = call_record.destinations[0]
    assert (call_record.status, destination.outcome) == ("completed", "answered")
    assert destination.callSid == create.call_sid
    call = await CallStore(database).get(create.call_sid)
    assert call is not None
    assert (call.direction, call.scheduled_call_id, call.id) == (
        "outbound",
        scheduled.id,
        destination.callId,
    )
    assert [(e.role, e.text) for e in call.transcript] == [
        ("user", CALLEE.first_words),
        ("assistant", OPENER),
        ("user", CALLEE_SAYS),
        ("assistant", "Great, see you Tuesday. Goodbye!"),
    ]
    assert call.end_reason == "agent-ended"
    assert record.status == "completed"


async def test_when_the_callees_hello_is_not_heard_the_agent_speaks_first(
    database: Db, settings: Settings
) -> None:
    replies = (OPENER, Reply("Great, see you Tuesday. Goodbye!", end_call=True))
    async with calling_line(database, settings, *replies, heard=(CALLEE_SAYS,)) as line:
        await line.schedule()
        (create,) = await line.standin.wait_for_creates(1, answered=True)
        assert create.call_sid is not None
        await line.standin.finished(create.call_sid)

    assert [m.content for m in line.llm.requests[0].messages[1:]] == [CALLEE_SILENT]
    call = await CallStore(database).get(create.call_sid)
    assert call is not None
    assert [(e.role, e.text) for e in call.transcript][:2] == [
        ("assistant", OPENER),
        ("user", CALLEE_SAYS),
    ]


async def test_a_normal_call_says_its_message_and_hangs_up(
    database: Db, settings: Settings
) -> None:
    async with calling_line(database, settings) as line:
        scheduled = await line.schedule(
            callType="normal", promptId=None, promptContent=None, message=VOICEMAIL
        )
        (create,) = await line.standin.wait_for_creates(1, answered=True)
        assert create.call_sid is not None
        await line.standin.finished(create.call_sid)
        done = await settled(line, scheduled.id)

    assert line.llm.requests == [], "a normal call asks no language model"
    assert (done.status, done.destinations[0].outcome) == ("completed", "answered")
    call = await CallStore(database).get(create.call_sid)
    assert call is not None
    assert [(e.role, e.text) for e in call.transcript][-1] == ("assistant", VOICEMAIL)
    assert call.end_reason == "message-delivered"


async def test_a_voicemail_is_left_after_the_beep(database: Db, settings: Settings) -> None:
    standin = TwilioStandin(default_callee=MACHINE)
    async with calling_line(database, settings, OPENER, standin=standin) as line:
        scheduled = await line.schedule(voicemailMessage=VOICEMAIL)
        (create,) = await line.standin.wait_for_creates(1, answered=True)
        assert create.call_sid is not None
        record = await line.standin.finished(create.call_sid)
        done = await settled(line, scheduled.id)

    assert record.voicemail_ms > 2000, "the message was recorded after the beep"
    assert (done.status, done.destinations[0].outcome) == ("completed", "voicemail")
    call = await CallStore(database).get(create.call_sid)
    assert call is not None
    assert call.end_reason == "voicemail-left"
    assert ("assistant", VOICEMAIL) in [(e.role, e.text) for e in call.transcript]


async def test_without_a_voicemail_message_a_machine_is_hung_up_on(
    database: Db, settings: Settings
) -> None:
    standin = TwilioStandin(default_callee=MACHINE)
    async with calling_line(database, settings, OPENER, OPENER, standin=standin) as line:
        scheduled = await line.schedule()
        (create,) = await line.standin.wait_for_creates(1, answered=True)
        assert create.call_sid is not None
        record = await line.standin.finished(create.call_sid)
        done = await settled(line, scheduled.id)

    assert record.hung_up_by == "api", "hung up through the REST API"
    assert record.voicemail_ms == 0
    assert (done.status, done.destinations[0].outcome) == ("completed", "voicemail")
    call = await CallStore(database).get(create.call_sid)
    assert call is not None
    assert call.end_reason == "answering-machine"
    assert call.end_time is not None
    assert call.end_time <= datetime.now(UTC)
