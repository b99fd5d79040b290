"""One SMS reply: the agent's LLM, given its system prompt and the conversation's last 24 hours.

Twilio waits 15 s at most for a webhook's answer (docs/twilio.md §7), so the reply is raced
against `SMS_REPLY_BUDGET_SECONDS`: ready in time, it goes back inline as TwiML `<Message>`;
otherwise the webhook answers `<Response/>` and the reply is sent through Twilio's REST API with
the number's own credentials once it is ready. An LLM that fails (or names a model nobody
serves, or says nothing) gives a short fallback text instead. Replies are stored as outbound
messages with what produced them: model, token usage, timings.

An inline reply is stored under `<inbound MessageSid>.reply` (Twilio gives the message its SID
only after our answer, so no status reaches it); a REST reply under the SID Twilio returned.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from contextlib import aclosing
from dataclasses import dataclass

from pymongo.errors import PyMongoError

from stores.agents import Agent
from stores.documents import utc_now
from stores.messages import Message, NewMessage
from stores.phone_numbers import PhoneNumber
from voice_server.log import get_logger
from voice_server.provider_setup import text_models
from voice_server.providers.base import ChatMessage, LlmRequest, LlmUsage, ProviderError
from voice_server.providers.registry import UnknownModel
from voice_server.retry import retry_database
from voice_server.services import Services
from voice_server.twilio_api.rest import (
    SMS_MAX_CHARS,
    SendFailed,
    number_credentials,
    status_callback_url,
)

log = get_logger(__name__)

FALLBACK_TEXT = "Sorry, I cannot answer right now. Please try again a little later."
LLM_DEADLINE_S = 60.0  # a reply later than this is worth less than the fallback
STORE_WINDOW_S = 2.0  # how long storing a reply is retried; an inline reply waits for it
_SENTENCE_END = re.compile(r"""[.!?…]+["')\]]*(?=\s)""")


@dataclass(frozen=True)
class Exchange:
    """The conversation a reply belongs to and the inbound message it answers."""

    number: PhoneNumber
    user_number: str
    conversation_id: str
    inbound_sid: str


@dataclass(frozen=True)
class Reply:
    text: str
    model: str | None = None
    usage: dict[str, int] | None = None
    metrics: dict[str, float] | None = None


def fit_sms(text: str, limit: int = SMS_MAX_CHARS) -> str:
    """`text` within `limit` characters: cut after its last whole sentence that fits, else
    after its last whole word (marked with an ellipsis)."""
    if len(text) <= limit:
        return text
    ends = [m.end() for m in _SENTENCE_END.finditer(text, 0, limit + 1) if m.end() <= limit]
    if ends:
        return text[: ends[-1]]
    head = text[: limit - 1]
    words = head.rsplit(maxsplit=1)
    return (words[0] if len(words) == 2 else head) + "…"


def as_chat(message: Message) -> ChatMessage:
    """A stored message as the LLM reads it; attachments are named, as it cannot see them."""
    text = message.body
    if message.media:
        kinds = ", ".join(item.content_type for item in message.media)
        text = f"{text} [{len(message.media)} attachment(s) you cannot see: {kinds}]".strip()
    return ChatMessage(role=message.role, content=text)


async def compose(services: Services, agent: Agent, history: Sequence[Message]) -> Reply:
    """The agent's reply to `history` (oldest first, the new message last); never raises."""
    try:
        models = text_models(agent, services.settings.speech_agent_text_model)
        llm = services.providers.for_models(models).llm
    except UnknownModel as error:
        log.error("the agent names a model no provider serves", error=str(error))
        return Reply(FALLBACK_TEXT)
    system = [ChatMessage("system", agent.systemPrompt)] if agent.systemPrompt else []
    request = LlmRequest(
        model=models.llm,
        messages=[*system, *(as_chat(message) for message in history)],
        temperature=agent.temperature,
        max_tokens=agent.maxTokens,
    )
    usage = LlmUsage()
    started, first = time.monotonic(), None
    parts: list[str] = []
    try:
        async with asyncio.timeout(LLM_DEADLINE_S), aclosing(llm.stream(request, usage)) as stream:
            async for piece in stream:
                first = first or time.monotonic()
                parts.append(piece)
    except (ProviderError, TimeoutError) as error:
        log.warning("the LLM failed; the fallback text answers", error=str(error) or "timeout")
        return Reply(FALLBACK_TEXT)
    text = "".join(parts).strip()
    if not text:
        log.warning("the LLM answered nothing; the fallback text answers")
        return Reply(FALLBACK_TEXT)
    done = time.monotonic()
    return Reply(
        fit_sms(text),
        model=models.llm,
        usage={"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens},
        metrics={
            "response_ms": round((done - started) * 1000, 1),
            "first_token_ms": round(((first or done) - started) * 1000, 1),
        },
    )


async def answer(
    services: Services, exchange: Exchange, agent: Agent, history: Sequence[Message]
) -> str | None:
    """The reply's text when it is ready within the budget, to answer inline; None when it
    will be sent through the REST API once ready."""
    inline: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
    services.twilio.later(_reply(services, exchange, agent, history, inline))
    try:
        reply = await asyncio.wait_for(inline, services.settings.sms_reply_budget_seconds)
    except TimeoutError:
        log.info("the LLM is slower than the budget; the reply will go through the REST API")
        return None
    await _store(services, exchange, reply, f"{exchange.inbound_sid}.reply", None)
    log.info("SMS answered inline", reply_chars=len(reply.text), model=reply.model)
    return reply.text


async def _reply(
    services: Services,
    exchange: Exchange,
    agent: Agent,
    history: Sequence[Message],
    inline: asyncio.Future[Reply],
) -> None:
    """Compose the reply, in the app's late-work TaskGroup; hand it to the webhook while it
    waits, else (its budget spent: `wait_for` cancelled `inline`) send it through the REST API."""
    reply = await compose(services, agent, history)
    if not inline.done():  # no await between this check and the hand-over: no race
        inline.set_result(reply)
        return
    sid, status = f"{exchange.inbound_sid}.reply", "failed"
    try:
        sent = await services.twilio.send(
            number_credentials(services.phone_numbers, exchange.number),
            from_=exchange.number.phoneNumber,
            to=exchange.user_number,
            body=reply.text,
            status_callback=status_callback_url(services.settings),
        )
        sid, status = sent.sid, sent.status
        log.info("SMS reply sent through the REST API", reply_sid=sid, model=reply.model)
    except SendFailed as error:
        log.error("the SMS reply could not be sent", error=str(error), code=error.code)
    await _store(services, exchange, reply, sid, status)


async def _store(
    services: Services, exchange: Exchange, reply: Reply, sid: str, status: str | None
) -> None:
    """Store the agent's reply, retrying a database hiccup for a moment. A reply that still
    cannot be stored is logged in full and goes out all the same: the inbound message already
    claimed this MessageSid, so a failing webhook would leave the texter unanswered for good."""
    message = NewMessage(
        agent_id=exchange.number.phoneNumber,
        user_number=exchange.user_number,
        userId=exchange.number.userId,
        message_sid=sid,
        body=reply.text,
        conversation_id=exchange.conversation_id,
        timestamp=utc_now(),
        model=reply.model,
        usage=reply.usage,
        metrics=reply.metrics,
        status=status,
    )
    try:
        await retry_database(
            "storing the SMS reply",
            lambda: services.messages.create_outbound_message(message),
            STORE_WINDOW_S,
        )
    except PyMongoError as error:
        log.error(
            "SMS reply could not be stored; logged in full instead",
            error=str(error),
            message=message.model_dump(mode="json"),
        )
