"""The Twilio stand-in places outbound calls as Twilio does, for the real `twilio` client: signed
status callbacks in order, the voice webhook, a media stream with its parameters, busy and
unanswered lines, answering machines with their beep and AMD callback, and REST updates."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from starlette.websockets import WebSocket
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from tests.voice_server.simulation.webhook_app import (
    StreamSeen,
    WebhookApp,
    say,
    serve_webhook_app,
)
from voice_server.simulation.callees import Callee
from voice_server.simulation.caller_script import CallerScript, HangUp, Say
from voice_server.simulation.twilio_standin import ApiFault, TwilioStandin, serve_twilio_standin
from voice_server.twilio_api.rest import _AiohttpTwilioClient

ACCOUNT = "AC" + "1" * 32
OURS = "+15550001000"
CALLEE = "+15550002000"
EVENTS = ["initiated", "ringing", "answered", "completed"]
QUICK = Callee(
    ring_s=0.05,
    first_words_after_ms=100,
    script=CallerScript(reply_timeout_s=5, agent_done_after_s=0.2),
    amd_after_s=0.3,
)


@dataclass
class Rig:
    standin: TwilioStandin
    app: WebhookApp
    client: Client
    token: str

    async def create(self, to: str = CALLEE, **options: object) -> str:
        call = await self.client.calls.create_async(
            to=to,
            from_=OURS,
            url=f"{self.app.base_url}/voice",
            status_callback=f"{self.app.base_url}/status",
            status_callback_event=EVENTS,
            **options,
        )
        return str(call.sid)


async def hang_up_once_heard(app: WebhookApp, websocket: WebSocket, seen: StreamSeen) -> None:
    """Greet, and once the greeting has played and the callee has said something, hang up."""
    await say(websocket, seen, "hello")
    await app.wait_until(lambda: "hello" in seen.echoed and seen.loud_ms() >= 200)
    await websocket.close()


async def hang_up_once_answered(app: WebhookApp, websocket: WebSocket, seen: StreamSeen) -> None:
    """Wait for a pause in the callee's speech, greet, and hang up once the callee has
    answered the greeting."""
    await app.wait_until(lambda: seen.quiet_ms() >= 300)
    await say(websocket, seen, "hello")
    await app.wait_until(lambda: "hello" in seen.echoed)
    since = len(seen.inbound)
    await app.wait_until(lambda: seen.loud_ms(since) >= 200)
    await websocket.close()


async def stay(app: WebhookApp, websocket: WebSocket, seen: StreamSeen) -> None:
    await say(websocket, seen, "hello")


@pytest.fixture
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    token = secrets.token_hex(16)
    agent = getattr(request, "param", hang_up_once_heard)
    app = WebhookApp(token, agent)
    standin = TwilioStandin(default_callee=QUICK)
    http = _AiohttpTwilioClient(timeout_s=5)
    async with serve_webhook_app(app), serve_twilio_standin(standin):
        app.twiml["/voice"] = app.stream_twiml(lead="42", leg="1")
        client = Client(ACCOUNT, token, http_client=http, environment={})
        client.api.base_url = standin.base_url
        try:
            yield Rig(standin, app, client, token)
        finally:
            await http.close()


async def test_a_call_rings_is_answered_and_streams_with_signed_webhooks(rig: Rig) -> None:
    sid = await rig.create(
        machine_detection="Enable",
        async_amd="true",
        async_amd_status_callback=f"{rig.app.base_url}/amd",
    )
    assert sid.startswith("CA")
    assert len(sid) == 34
    record = await rig.standin.finished(sid)

    assert all(request.signed for request in rig.app.requests)
    status = rig.app.received("/status")
    assert [r.form["CallStatus"] for r in status] == [*EVENTS[:2], "in-progress", "completed"]
    assert [r.form["SequenceNumber"] for r in status] == ["0", "1", "2", "3"]
    assert {(r.form["Direction"], r.form["CallSid"], r.form["AccountSid"]) for r in status} == {
        ("outbound-api", sid, ACCOUNT)
    }
    assert status[-1].form["CallDuration"] == str(record.duration_s)
    assert status[-1].form["AnsweredBy"] == "human"
    [voice] = rig.app.received("/voice")
    assert voice.form["CallStatus"] == "in-progress"
    assert voice.form["Direction"] == "outbound-api"
    assert (voice.form["From"], voice.form["To"], voice.form["CallSid"]) == (OURS, CALLEE, sid)
    [amd] = rig.app.received("/amd")
    assert amd.form["AnsweredBy"] == "human"
    assert int(amd.form["MachineDetectionDuration"]) >= 300

    [seen] = rig.app.streams
    assert seen.signed
    assert seen.start is not None
    assert (seen.start.call_sid, seen.start.account_sid) == (sid, ACCOUNT)
    assert dict(seen.start.custom_parameters) == {"lead": "42", "leg": "1"}
    assert seen.loud_ms() >= 200  # "Hello?"
    assert record.statuses == ["queued", "initiated", "ringing", "in-progress", "completed"]
    assert record.hung_up_by == "agent"
    assert record.answered_by == "human"
    assert [s.ended_by for s in record.streams] == ["server"]
    assert record.streams[0].agent_audio_ms == 200.0
    assert rig.standin.creates[0].getall("StatusCallbackEvent") == EVENTS


async def test_an_invalid_number_is_refused_with_twilios_error(rig: Rig) -> None:
    with pytest.raises(TwilioRestException) as refused:
        await rig.create(to="555-0100")
    assert (refused.value.status, refused.value.code) == (400, 21211)
    assert [(c.get("To"), c.answer, c.call_sid) for c in rig.standin.creates] == [
        ("555-0100", 400, None)
    ]
    assert rig.app.requests == []


async def test_scripted_refusals_then_success(rig: Rig) -> None:
    rig.standin.fail_next(ApiFault(429), ApiFault(503))
    for status, code in [(429, 20429), (503, 20503)]:
        with pytest.raises(TwilioRestException) as refused:
            await rig.create()
        assert (refused.value.status, refused.value.code) == (status, code)
    sid = await rig.create()
    assert [c.answer for c in rig.standin.creates] == [429, 503, 201]
    assert (await rig.standin.finished(sid)).status == "completed"


async def test_a_late_answer_leaves_the_call_placed(rig: Rig) -> None:
    """The client gives up on a slow answer, but Twilio placed the call all the same."""
    rig.standin.fail_number(CALLEE, ApiFault(None, delay_s=0.6))
    http = _AiohttpTwilioClient(timeout_s=0.2)
    impatient = Client(ACCOUNT, rig.token, http_client=http, environment={})
    impatient.api.base_url = rig.standin.base_url
    try:
        with pytest.raises(TimeoutError):
            await impatient.calls.create_async(to=CALLEE, from_=OURS, twiml="<Response/>")
    finally:
        await http.close()
    [create] = await rig.standin.wait_for_creates(1, answered=True)
    assert create.answer == 201
    assert create.call_sid is not None
    record = await rig.standin.finished(create.call_sid)
    assert (record.status, record.hung_up_by) == ("completed", "agent")


@pytest.mark.parametrize(
    ("callee", "status"),
    [
        (Callee("busy", ring_s=0.05), "busy"),
        (Callee("failed", ring_s=0.05), "failed"),
        (Callee("no-answer", ring_s=0.1), "no-answer"),
        (Callee("human", ring_s=5.0), "no-answer"),  # rings past the call's Timeout of 1 s
    ],
)
async def test_lines_that_never_answer(rig: Rig, callee: Callee, status: str) -> None:
    rig.standin.callees[CALLEE] = callee
    sid = await rig.create(timeout=1, status_callback_method="GET")
    record = await rig.standin.finished(sid)
    assert [r.form["CallStatus"] for r in rig.app.received("/status")] == [
        "initiated",
        "ringing",
        status,
    ]
    assert rig.app.received("/status")[-1].form["CallDuration"] == "0"
    assert all(request.signed for request in rig.app.requests)
    assert rig.app.received("/voice") == []
    assert (record.status, record.hung_up_by, record.streams) == (status, "network", [])


async def test_a_voice_webhook_that_never_answers_ends_the_call(rig: Rig) -> None:
    rig.standin.webhook_timeout_s = 0.3  # Twilio waits 15 s
    rig.app.held["/voice"] = held = asyncio.Event()
    try:
        sid = await rig.create()
        record = await rig.standin.finished(sid)
    finally:
        held.set()
    assert [error[:6] for error in record.errors] == ["11205:"]
    assert (record.status, record.hung_up_by, record.streams) == ("completed", "network", [])
    assert rig.app.received("/status")[-1].form["CallStatus"] == "completed"


async def leave_a_message(app: WebhookApp, websocket: WebSocket, seen: StreamSeen) -> None:
    """Say nothing until the AMD callback says the beep has played, then leave a message."""
    await app.wait_until(lambda: bool(app.received("/amd")))
    await say(websocket, seen, "message", ms=400)
    await app.wait_until(lambda: "message" in seen.echoed)
    await websocket.close()


@pytest.mark.parametrize("rig", [leave_a_message], indirect=True)
async def test_an_answering_machine_beeps_and_records_the_message(rig: Rig) -> None:
    machine = Callee("machine", ring_s=0.05, greeting="Leave a message.", beep_ms=500)
    rig.standin.callees[CALLEE] = machine
    sid = await rig.create(
        machine_detection="DetectMessageEnd",
        async_amd="true",
        async_amd_status_callback=f"{rig.app.base_url}/amd",
    )
    record = await rig.standin.finished(sid)

    [amd] = rig.app.received("/amd")
    assert (amd.form["AnsweredBy"], amd.form["CallSid"], amd.signed) == (
        "machine_end_beep",
        sid,
        True,
    )
    [seen] = rig.app.streams
    greeting_and_beep_ms = seen.loud_ms()
    assert greeting_and_beep_ms >= 500 + 500  # the greeting, then the beep, before the callback
    assert int(amd.form["MachineDetectionDuration"]) >= greeting_and_beep_ms
    assert record.answered_by == "machine_end_beep"
    assert record.voicemail_ms == 400.0
    assert record.voicemail is not None
    assert len(record.voicemail) > 3000
    assert record.hung_up_by == "agent"


async def wait_for_hello(rig: Rig) -> StreamSeen:
    await rig.app.wait_until(lambda: bool(rig.app.streams) and rig.app.streams[-1].loud_ms() >= 200)
    return rig.app.streams[-1]


@pytest.mark.parametrize("rig", [stay], indirect=True)
async def test_an_update_to_completed_hangs_up_and_fetch_follows(rig: Rig) -> None:
    sid = await rig.create()
    seen = await wait_for_hello(rig)
    fetched = await rig.client.calls(sid).fetch_async()
    assert (fetched.status, fetched.direction, fetched.duration) == (
        "in-progress",
        "outbound-api",
        None,
    )

    updated = await rig.client.calls(sid).update_async(status="completed")
    assert updated.status == "completed"
    await rig.app.wait_until(lambda: seen.closed)
    assert seen.stopped  # Twilio says `stop` before it closes the stream
    record = await rig.standin.finished(sid)
    assert (record.hung_up_by, [s.ended_by for s in record.streams]) == ("api", ["twilio"])
    assert rig.app.received("/status")[-1].form["CallStatus"] == "completed"
    fetched = await rig.client.calls(sid).fetch_async()
    assert (fetched.status, fetched.duration) == ("completed", str(record.duration_s))

    with pytest.raises(TwilioRestException) as unknown:
        await rig.client.calls("CA" + "0" * 32).fetch_async()
    assert (unknown.value.status, unknown.value.code) == (404, 20404)


@pytest.mark.parametrize("rig", [stay], indirect=True)
async def test_an_update_with_a_url_moves_the_call_to_a_new_stream(rig: Rig) -> None:
    """The callee's conversation goes on over the new stream: it answers the agent there."""
    replies = dataclasses.replace(QUICK.script, turns=("Yes.",))
    rig.standin.callees[CALLEE] = dataclasses.replace(QUICK, script=replies)
    sid = await rig.create()
    first = await wait_for_hello(rig)
    rig.app.twiml["/next"] = rig.app.stream_twiml(leg="2")
    rig.app.agent = hang_up_once_answered

    await rig.client.calls(sid).update_async(url=f"{rig.app.base_url}/next")
    record = await rig.standin.finished(sid)

    assert first.stopped
    assert first.closed
    second = rig.app.streams[1]
    assert second.start is not None
    assert (second.start.call_sid, dict(second.start.custom_parameters)) == (sid, {"leg": "2"})
    assert [r.path for r in rig.app.requests if r.path != "/status"] == ["/voice", "/next"]
    assert all(request.signed for request in rig.app.requests)
    assert [s.ended_by for s in record.streams] == ["twilio", "server"]
    assert record.hung_up_by == "agent"
    assert record.line is not None
    [*_, yes] = record.line.turns
    assert yes.said == "Yes."
    assert record.streams[1].first_tick <= yes.ticks[0] < record.streams[1].last_tick


@pytest.mark.parametrize("rig", [stay], indirect=True)
async def test_an_update_with_twiml_replaces_the_stream(rig: Rig) -> None:
    sid = await rig.create()
    seen = await wait_for_hello(rig)
    goodbye = "<Response><Say>Goodbye.</Say><Hangup/></Response>"

    await rig.client.calls(sid).update_async(twiml=goodbye)
    record = await rig.standin.finished(sid)

    assert seen.stopped
    assert record.twiml[-1] == goodbye
    assert [s.ended_by for s in record.streams] == ["twilio"]
    assert (record.status, record.hung_up_by, record.errors) == ("completed", "agent", [])


async def test_a_callee_who_hangs_up_ends_the_call(rig: Rig) -> None:
    hangs_up = dataclasses.replace(QUICK.script, steps=(HangUp(when="now"), Say("Never said.")))
    rig.standin.callees[CALLEE] = dataclasses.replace(QUICK, script=hangs_up)
    rig.app.agent = stay
    sid = await rig.create()
    record = await rig.standin.finished(sid)
    [seen] = rig.app.streams
    assert seen.stopped  # the callee's `stop`
    assert record.hung_up_by == "callee"
    assert record.line is not None
    assert [turn.said for turn in record.line.turns] == ["Hello?"]
