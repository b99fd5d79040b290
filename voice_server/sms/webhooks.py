"""Twilio's SMS webhooks: incoming messages (`POST /twilio/sms`) and delivery statuses
(`POST /twilio/sms-status`). A side path beside the voice pipeline, sharing its agents, stores
and LLM providers.

An incoming message is stored in the `(userId, agent_id, user_number)` conversation of the
number's owner (`agent_id` = the normalised `To`, `user_number` = the normalised `From`), then
answered by the agent's LLM with the last 24 hours of that conversation (see
`voice_server.sms.reply`). A number deleted by one user and registered by another starts afresh:
the new owner's agent never sees the texts its predecessor exchanged on the number.

**Which agent answers texts**: the agent the voice look-up would pick for a call to the number
(active, `incoming`, the most recently updated); when the number has none, the most recently
updated active agent on it, whatever its direction.

**Once per MessageSid**: Twilio retries webhooks. Storing the inbound message is the claim: the
store appends a `message_sid` to its conversation at most once (an atomic conditional update
backed by the unique conversation index), and only the delivery that stored it answers, on
whichever server instance it arrived. Every other delivery gets `<Response/>`.

Every answer is valid TwiML. Outcomes, each logged with the MessageSid bound:

| input | stored | answered |
|---|---|---|
| `To` unregistered, or not a phone number | no | no |
| `From` not a phone number (short code, sender name) | no | no |
| a MessageSid already stored | no (it is) | no |
| number inactive, or no active agent on it | yes | no |
| empty body and no media | yes | no |
| body over 1600 characters | cut to 1600 | yes |
| MMS (`NumMedia` > 0) | with its media URLs | yes; the LLM is told of the attachments |
| anything, while the database is unreachable | no: logged in full | "please send it again" |

The database work before the reply has `WEBHOOK_DATABASE_BUDGET_S` in all
(`voice_server.twilio_api.outage`): while the database is unreachable the texter is asked,
within ~2 s, to send the message again, and the message is logged at ERROR with the whole form.
A delivery status is then logged the same way and answered 204.
"""

from __future__ import annotations

from datetime import datetime

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from structlog.contextvars import bound_contextvars
from twilio.twiml.messaging_response import MessagingResponse

from stores.agents import Agent
from stores.documents import utc_now
from stores.messages import Media, Message, NewMessage, current_conversation_id
from stores.owned import ListQuery
from stores.phone_numbers import InvalidPhoneNumber, PhoneNumber, normalize_phone_number
from voice_server.log import get_logger
from voice_server.security.webhook_signature import verified_form
from voice_server.services import Services
from voice_server.sms.reply import Exchange, answer
from voice_server.twilio_api.outage import answers_outage, database_budget
from voice_server.twilio_api.rest import SMS_MAX_CHARS
from voice_server.twilio_api.twiml import twiml_response

log = get_logger(__name__)

MAX_MEDIA = 10  # Twilio attaches at most ten media to one message
OUTAGE_TEXT = (
    "Sorry, we could not read your message just now. Please send it again in a few minutes."
)
Unanswered = tuple[Exchange, Agent, list[Message]]  # what the agent is to answer, and with what


@answers_outage(
    "the message was not stored; the texter was asked to send it again",
    lambda: _twiml(OUTAGE_TEXT),
    budget=False,  # the reply's LLM call and its storing come after the budget, on their own
)
async def incoming_sms(request: Request) -> Response:
    """POST /twilio/sms: store the message; answer it once, inline or through the REST API."""
    services: Services = request.state.services
    with database_budget():
        params, number = await verified_form(request, "To")
        sid = params.get("MessageSid", "")
        if not sid:
            raise HTTPException(status_code=400, detail="MessageSid is missing")
        with bound_contextvars(message_sid=sid):
            unanswered = await _store(services, params, number)
    with bound_contextvars(message_sid=sid):
        return _twiml(None if unanswered is None else await answer(services, *unanswered))


async def _store(
    services: Services, params: dict[str, str], number: PhoneNumber | None
) -> Unanswered | None:
    """Store the message; what the agent must answer, if anything. Every outcome is logged."""
    if number is None:
        log.warning("SMS to a number that is not registered", to=params.get("To", ""))
        return None
    try:
        user_number = normalize_phone_number(params.get("From", ""))
    except InvalidPhoneNumber as error:
        log.warning("SMS from a sender that is not a phone number", error=str(error))
        return None
    return await _store_from(services, params, number, user_number)


async def _store_from(
    services: Services, params: dict[str, str], number: PhoneNumber, user_number: str
) -> Unanswered | None:
    now = utc_now()
    history = await services.messages.last_24h_messages(
        number.userId, number.phoneNumber, user_number, now
    )
    conversation_id = current_conversation_id(history)
    inbound = _inbound(params, number, user_number, conversation_id, now)
    if not await services.messages.create_message(inbound):
        log.info("SMS already stored: a repeated delivery is not answered again")
        return None
    log.info("SMS stored", chars=len(inbound.body), media=len(inbound.media or []))
    if not number.isActive:
        log.warning("SMS to an inactive number is stored, not answered")
        return None
    if not inbound.body.strip() and not inbound.media:
        log.info("an empty SMS is stored, not answered")
        return None
    agent = await sms_agent(services, number)
    if agent is None:
        log.warning("no active agent on the number: the SMS is stored, not answered")
        return None
    exchange = Exchange(number, user_number, conversation_id, inbound.message_sid)
    return exchange, agent, [*history, _as_message(inbound)]


def _inbound(
    params: dict[str, str], number: PhoneNumber, user_number: str, conversation: str, now: datetime
) -> NewMessage:
    body = params.get("Body", "")
    if len(body) > SMS_MAX_CHARS:
        log.warning("SMS body longer than an SMS can be: stored cut", chars=len(body))
        body = body[:SMS_MAX_CHARS]
    return NewMessage(
        agent_id=number.phoneNumber,
        user_number=user_number,
        userId=number.userId,
        message_sid=params["MessageSid"],
        body=body,
        conversation_id=conversation,
        timestamp=now,
        media=_media(params) or None,
    )


def _media(params: dict[str, str]) -> list[Media]:
    """The MMS attachments (`MediaUrl{i}`, `MediaContentType{i}` for i < NumMedia)."""
    count = params.get("NumMedia", "0")
    total = min(int(count), MAX_MEDIA) if count.isdecimal() else 0
    return [
        Media(url=params[f"MediaUrl{i}"], content_type=params.get(f"MediaContentType{i}", ""))
        for i in range(total)
        if params.get(f"MediaUrl{i}")
    ]


def _as_message(inbound: NewMessage) -> Message:
    fields = inbound.model_dump(exclude={"agent_id", "user_number", "userId"})
    return Message(**fields, agent_number=inbound.agent_id, direction="inbound", role="user")


async def sms_agent(services: Services, number: PhoneNumber) -> Agent | None:
    """The agent that answers texts to the active `number` (see the module docstring)."""
    agent = await services.agents.find_for_incoming_call(number.phoneNumber)
    if agent is not None:
        return agent
    query = ListQuery(
        filters={"phoneNumber": number.phoneNumber, "active": True}, sort="updated_at", limit=1
    )
    found = await services.agents.page(number.userId, query)
    return found.items[0] if found.items else None


def _twiml(reply: str | None) -> Response:
    response = MessagingResponse()
    if reply is not None:
        response.message(reply)
    return twiml_response(response)


@answers_outage("the delivery status was not recorded", lambda: Response(status_code=204))
async def message_status(request: Request) -> Response:
    """POST /twilio/sms-status: record an outbound message's delivery status on the stored
    message of the number's owner; never back from a final one (callbacks arrive out of
    order)."""
    services: Services = request.state.services
    params, number = await verified_form(request, "From")  # From: our number, for its token
    sid, status = params.get("MessageSid", ""), params.get("MessageStatus", "")
    with bound_contextvars(message_sid=sid):
        if not sid or not status:
            log.warning("SMS status callback without MessageSid or MessageStatus")
            return Response(status_code=204)
        if number is None:
            log.warning(
                "SMS status callback for a number nobody holds", From=params.get("From", "")
            )
            return Response(status_code=204)
        try:
            recorded = await services.messages.record_status(
                number.userId,
                number.phoneNumber,
                params.get("To", ""),
                sid,
                status=status,
                error_code=params.get("ErrorCode", ""),
            )
        except InvalidPhoneNumber as error:
            log.warning("SMS status callback with a number that is not one", error=str(error))
            return Response(status_code=204)
        log.info("SMS status received", status=status, recorded=recorded)
    return Response(status_code=204)
