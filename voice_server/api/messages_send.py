"""`POST /api/messages`: send a text from one of the caller's numbers.

The text goes out through Twilio's REST API with the number's own credentials, and is stored as
an outbound message of the caller's `(number, to)` conversation, under the SID Twilio gave it,
so the delivery statuses Twilio reports to `/twilio/sms-status` land on it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from stores.documents import utc_now
from stores.messages import ConversationMessage, NewMessage, current_conversation_id
from stores.owned import IdText
from stores.phone_numbers import E164
from voice_server.api.envelope import ApiError, invalid
from voice_server.api.operations import ApiRequest, Operation
from voice_server.api.references import number_by_id
from voice_server.log import get_logger
from voice_server.twilio_api.rest import (
    SMS_MAX_CHARS,
    SendFailed,
    number_credentials,
    status_callback_url,
)

log = get_logger(__name__)
TAG = "conversations"


class OutboundSms(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fromPhoneNumberId: IdText
    to: E164
    body: str = Field(min_length=1, max_length=SMS_MAX_CHARS)


async def send_message(request: ApiRequest) -> ConversationMessage:
    """Send, then store; a message Twilio refused is not stored (502 says why)."""
    sms: OutboundSms = request.body
    services = request.services
    field = "body.fromPhoneNumberId"
    number = await number_by_id(services, request.user_id, sms.fromPhoneNumberId, field)
    if not number.isActive:
        raise invalid(field, "the phone number is not active")
    try:
        sent = await services.twilio.send(
            number_credentials(services.phone_numbers, number),
            from_=number.phoneNumber,
            to=sms.to,
            body=sms.body,
            status_callback=status_callback_url(services.settings),
        )
    except SendFailed as error:
        log.warning("outbound SMS refused", error=str(error), code=error.code)
        raise ApiError(502, "twilio_error", str(error)) from None
    now = utc_now()
    history = await services.messages.last_24h_messages(
        request.user_id, number.phoneNumber, sms.to, now
    )
    message = NewMessage(
        agent_id=number.phoneNumber,
        user_number=sms.to,
        userId=request.user_id,
        message_sid=sent.sid,
        body=sms.body,
        conversation_id=current_conversation_id(history),
        timestamp=now,
        status=sent.status,
    )
    await services.messages.create_outbound_message(message)
    log.info("outbound SMS sent", message_sid=sent.sid, to=sms.to)
    fields = message.model_dump(exclude={"agent_id", "userId"})
    return ConversationMessage(
        **fields, agent_number=number.phoneNumber, direction="outbound", role="assistant"
    )


OPERATIONS = [
    Operation("POST", "/messages", "Send an SMS from one of your numbers", TAG, send_message,
              ConversationMessage, status=201, body=OutboundSms, errors=(400, 422, 502)),
]  # fmt: skip
