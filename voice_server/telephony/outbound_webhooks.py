"""Twilio's webhooks for calls we placed: the answer, and the answering-machine verdict.

Both URLs name the scheduled call and the destination (`?scheduled=…&destination=…`); the
request must be signed with the auth token of that scheduled call's `from` number and carry its
account, and its CallSid must be the one Twilio gave for that destination, so no one else can
drive a call of ours.

The answer records the call (`direction: outbound`, linked to its scheduled call) and connects
the callee to the agent's media stream; what the stream does is in its `opening` parameter:
`conversation` (an `ai` call), `message` (a `normal` one) or `voicemail` (the message left after
a beep). The machine verdict comes asynchronously, after a machine's beep: the destination's
outcome becomes `voicemail`, and the call is either sent to new TwiML whose stream leaves the
message, or hung up on when there is none to leave.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from twilio.twiml.voice_response import Connect, VoiceResponse

from stores.calls import CallCreate, ForeignCall
from stores.phone_numbers import PhoneNumber
from stores.scheduled_call_runs import Placed
from stores.scheduled_calls import ScheduledCall
from voice_server.call.end_reasons import EndReason
from voice_server.log import bind_call, get_logger
from voice_server.security.stream_tokens import StreamGrant
from voice_server.security.webhook_signature import refuse, verified_form_for
from voice_server.services import Services
from voice_server.telephony.voice_webhooks import CALL_SID
from voice_server.twilio_api.calls import CallNotPlaced, CallUrls, hang_up, redirect_call
from voice_server.twilio_api.outage import answers_outage
from voice_server.twilio_api.rest import SendFailed, number_credentials
from voice_server.twilio_api.twiml import twiml_response

log = get_logger(__name__)

MACHINE_VERDICTS = frozenset(
    {"machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax"}
)


def _hang_up() -> VoiceResponse:
    response = VoiceResponse()
    response.hangup()
    return response


class _Verified:
    """A verified webhook about one destination of one of our scheduled calls."""

    def __init__(
        self, params: dict[str, str], call: ScheduledCall, placed: Placed, number: PhoneNumber
    ) -> None:
        self.params = params
        self.call = call
        self.placed = placed
        self.index = placed.index
        self.number = number
        self.call_sid = placed.call_sid


async def _verified(request: Request) -> _Verified:
    """The webhook, verified for the scheduled call and destination its URL names; 403 for
    anything else (logged)."""
    services: Services = request.state.services
    scheduled_id = request.query_params.get("scheduled", "")
    index_text = request.query_params.get("destination", "")
    call = await services.scheduled_runs.get(scheduled_id)
    if call is None or not index_text.isdigit() or int(index_text) >= len(call.destinations):
        raise refuse(request, "the URL names no scheduled call and destination of ours")
    index = int(index_text)
    number = await services.phone_numbers.get(call.userId, call.fromPhoneNumberId)
    if number is None:
        raise refuse(request, "the scheduled call's number no longer exists")
    params = await verified_form_for(request, number)
    call_sid = params.get("CallSid", "")
    if not CALL_SID.fullmatch(call_sid):
        raise HTTPException(status_code=400, detail="CallSid is missing or not a Twilio call SID")
    bind_call(call_sid=call_sid)
    placed = Placed(call.id, index, call_sid, number.id)
    if await services.scheduled_runs.placed_call(placed) is None:
        raise refuse(request, "the CallSid is not the call placed to this destination")
    return _Verified(params, call, placed, number)


@answers_outage("the call we placed was hung up", lambda: twiml_response(_hang_up()))
async def outbound_answer(request: Request) -> Response:
    """POST /twilio/outbound: the callee answered; connect them to the agent's stream."""
    services: Services = request.state.services
    placed = await _verified(request)
    call = placed.call
    agent = await services.agents.find_for_outbound_call(call.userId, placed.number.phoneNumber)
    if agent is None:
        log.warning("answered call has no agent to speak; hanging up")
        await services.scheduled_runs.outcome(
            placed.placed, "failed", "no agent on the number", final=False
        )
        return twiml_response(_hang_up())
    voicemail = request.query_params.get("voicemail") == "1"
    record = CallCreate(
        call_sid=placed.call_sid,
        from_number=placed.number.phoneNumber,
        to_number=call.destinations[placed.index].to,
        agent_id=agent.id,
        userId=call.userId,
        session_id=uuid4().hex,
        start_time=datetime.now(UTC),
        direction="outbound",
        scheduled_call_id=call.id,
    )
    try:
        created = await services.calls.create(record)
    except ForeignCall:
        raise refuse(request, "the CallSid is a call of another number") from None
    await services.scheduled_runs.answered(placed.placed, created.id)
    opening = (
        "voicemail" if voicemail else "message" if call.callType == "normal" else "conversation"
    )
    log.info("call we placed answered", opening=opening, scheduled_call_id=call.id)
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=services.settings.stream_url)
    stream.parameter(name="call_sid", value=placed.call_sid)
    stream.parameter(name="opening", value=opening)
    grant = StreamGrant(placed.call_sid, created.agent_id, created.scheduled_call_id)
    for name, value in services.tokens.mint(grant).items():
        stream.parameter(name=name, value=value)
    response.append(connect)
    return twiml_response(response)


@answers_outage("the answering-machine verdict was not recorded", lambda: Response(status_code=204))
async def machine_verdict(request: Request) -> Response:
    """POST /twilio/machine: asynchronous answering-machine detection's verdict."""
    services: Services = request.state.services
    placed = await _verified(request)
    answered_by = placed.params.get("AnsweredBy", "")
    log.info("answering-machine verdict", answered_by=answered_by)
    if answered_by not in MACHINE_VERDICTS:
        return Response(status_code=204)  # a person (or unknown): the conversation goes on
    await services.scheduled_runs.outcome(placed.placed, "voicemail", final=False)
    try:
        credentials = number_credentials(services.phone_numbers, placed.number)
        if placed.call.left_on_voicemail is None:
            await services.calls.finalize(
                placed.call_sid, ended_at=datetime.now(UTC), reason=EndReason.ANSWERING_MACHINE
            )
            await hang_up(services.twilio, credentials, placed.call_sid)
        else:
            await services.calls.hand_over(placed.call_sid)
            urls = CallUrls.of(services.settings.base_url, placed.call.id, placed.index)
            await redirect_call(
                services.twilio, credentials, placed.call_sid, f"{urls.answer}&voicemail=1"
            )
    except (CallNotPlaced, SendFailed) as error:
        log.error("could not act on the answering machine", error=str(error))
    return Response(status_code=204)
