"""Twilio's HTTP webhooks for calls: the incoming-call answer and the call-status callback.

Every request must be signed for one of our numbers (`voice_server.security.webhook_signature`), and
touches only calls on that number: a CallSid is just a form field, which any customer's token
can sign, so a call of another number named in it is refused (403) and left alone. The
incoming-call answer must be fast (Twilio waits 15 s at most): no provider is called here; the
greeting render only starts, in the background.

While the database is unreachable, a webhook answers within ~2 s all the same
(`voice_server.twilio_api.outage`): an incoming call hears the apology and is hung up; a status
callback gets its 204. Either is logged at ERROR with the whole form, as it is not stored.
"""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime
from uuid import uuid4

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from twilio.twiml.voice_response import Connect, VoiceResponse

from stores.calls import Call, CallCreate, CallLine, ForeignCall
from stores.phone_numbers import InvalidPhoneNumber, PhoneNumber, normalize_phone_number
from stores.scheduled_call_runs import Placed
from voice_server.call.end_reasons import EndReason
from voice_server.call.phrases import FALLBACK_TEXT
from voice_server.log import bind_call, get_logger
from voice_server.metrics import CALLS
from voice_server.provider_setup import agent_models
from voice_server.providers.registry import UnknownModel
from voice_server.security.stream_tokens import StreamGrant
from voice_server.security.webhook_signature import refuse, verified_form
from voice_server.services import Services
from voice_server.twilio_api.calls import OUTCOME_OF_STATUS
from voice_server.twilio_api.outage import answers_outage
from voice_server.twilio_api.twiml import twiml_response

log = get_logger(__name__)

APOLOGY = "Sorry, this number cannot take your call right now. Goodbye."
TERMINAL_CALL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})

# Twilio's call SIDs: "CA" and 32 hex digits. Anything else did not come from Twilio, and is
# refused before it reaches a call record, a stream token or the TwiML we answer.
CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")


def _apology() -> VoiceResponse:
    response = VoiceResponse()
    response.say(APOLOGY)
    response.hangup()
    return response


@answers_outage("the call was answered with an apology", lambda: twiml_response(_apology()))
async def incoming_call(request: Request) -> Response:
    """POST /twilio/voice: connect a known number's call to its agent, or apologise."""
    services: Services = request.state.services
    params, number = await verified_form(request, "To")
    call_sid = params.get("CallSid", "")
    if not CALL_SID.fullmatch(call_sid):
        log.warning("voice webhook without a Twilio CallSid", chars=len(call_sid))
        raise HTTPException(status_code=400, detail="CallSid is missing or not a Twilio call SID")
    bind_call(call_sid=call_sid)
    caller, dialled = params.get("From", ""), params.get("To", "")
    if number is None:
        log.warning("call to a number that is not registered", to=dialled, caller=caller)
        CALLS.labels(outcome="unknown-number").inc()
        return twiml_response(_apology())
    if not number.isActive:
        return await _turn_away(request, number, params, EndReason.NUMBER_INACTIVE)
    agent = await services.agents.find_for_incoming_call(number.phoneNumber)
    if agent is None:
        return await _turn_away(request, number, params, EndReason.NO_ACTIVE_AGENT)
    try:
        providers = services.providers.for_models(agent_models(agent))
    except UnknownModel as error:
        log.error("agent names a model no provider serves", agent_id=agent.id, error=str(error))
        return await _turn_away(request, number, params, EndReason.PROVIDER_UNAVAILABLE, agent.id)
    call = await _record(request, number, params, agent.id)
    services.greetings.prepare(agent, providers.tts)
    services.greetings.prepare(agent, providers.tts, FALLBACK_TEXT)
    log.info("call accepted", agent_id=agent.id, to=number.phoneNumber)
    CALLS.labels(outcome="accepted").inc()
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=services.settings.stream_url)
    stream.parameter(name="call_sid", value=call_sid)
    for name, value in services.tokens.mint(StreamGrant(call_sid, call.agent_id)).items():
        stream.parameter(name=name, value=value)
    response.append(connect)
    return twiml_response(response)


async def _turn_away(
    request: Request,
    number: PhoneNumber,
    params: dict[str, str],
    reason: EndReason,
    agent_id: str = "",
) -> Response:
    """Apologise and hang up; the owner still sees the missed call, ended with `reason`."""
    call = await _record(request, number, params, agent_id)
    log.warning("call turned away", reason=reason, to=number.phoneNumber)
    CALLS.labels(outcome=reason).inc()
    services: Services = request.state.services
    await services.calls.finalize(call.call_sid, ended_at=datetime.now(UTC), reason=reason)
    return twiml_response(_apology())


async def _record(
    request: Request, number: PhoneNumber, params: dict[str, str], agent_id: str
) -> Call:
    """The call record (the same one again for Twilio's retries); 403 for a CallSid already
    recorded on another number."""
    caller = params.get("From", "")
    # Withheld or non-numeric caller IDs ("anonymous") are kept as Twilio sent them.
    with contextlib.suppress(InvalidPhoneNumber):
        caller = normalize_phone_number(caller)
    record = CallCreate(
        call_sid=params["CallSid"],
        from_number=caller,
        to_number=number.phoneNumber,
        agent_id=agent_id,
        userId=number.userId,
        session_id=uuid4().hex,
        start_time=datetime.now(UTC),
    )
    services: Services = request.state.services
    try:
        return await services.calls.create(record)
    except ForeignCall:
        raise _foreign_call(request, number) from None


def _foreign_call(request: Request, number: PhoneNumber | None) -> HTTPException:
    """The 403 for a webhook naming a call that is not on its number (logged, with the
    CallSid bound by the caller)."""
    number_id = {} if number is None else {"number_id": number.id}
    return refuse(request, "the CallSid is a call of another number", **number_id)


def _placed(request: Request, call_sid: str, number: PhoneNumber) -> Placed | None:
    """The scheduled call's destination a status callback's URL names (one we placed)."""
    scheduled = request.query_params.get("scheduled")
    destination = request.query_params.get("destination", "")
    if scheduled is None or not destination.isdigit():
        return None
    return Placed(scheduled, int(destination), call_sid, number.id)


@answers_outage("the call status was not recorded", lambda: Response(status_code=204))
async def call_status(request: Request) -> Response:
    """POST /twilio/status: a terminal call status ends the call record (if nothing did yet),
    when that call is on the number the callback was signed for; 403 for anyone else's."""
    services: Services = request.state.services
    # Our number is `To` on a call to us and `From` on a call we placed (Direction outbound-*).
    direction = str((await request.form()).get("Direction", ""))
    ours = "From" if direction.startswith("outbound") else "To"
    params, number = await verified_form(request, ours)
    status, call_sid = params.get("CallStatus", ""), params.get("CallSid", "")
    bind_call(call_sid=call_sid)
    if not call_sid or status not in TERMINAL_CALL_STATUSES:
        return Response(status_code=204)
    if number is None:  # no call of ours is on an unregistered number
        if await services.calls.get(call_sid) is not None:
            raise _foreign_call(request, None)
        return Response(status_code=204)
    line = CallLine(number.userId, number.phoneNumber)
    try:
        ended = await services.calls.finalize(
            call_sid,
            ended_at=datetime.now(UTC),
            reason=EndReason.from_twilio_status(status),
            line=line,
        )
    except ForeignCall:
        raise _foreign_call(request, number) from None
    if (placed := _placed(request, call_sid, number)) is not None:
        await services.scheduled_runs.outcome(placed, OUTCOME_OF_STATUS[status])
    log.info("call status received", status=status, finalized=ended)
    return Response(status_code=204)
