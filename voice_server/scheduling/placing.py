"""Placing one claimed scheduled call: check it can be placed, then dial each destination once.

A call that cannot be placed at all (its number or prompt deleted or another user's, the
number inactive or its token unreadable, no agent on the number, too late, too many numbers)
fails as a whole before anything is dialled, saying why. Each destination is dialled through
Twilio's `calls.create`; a rate limit, a Twilio error or the network is retried with backoff a
bounded number of times; a number Twilio refuses fails that destination only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from stores.agents import AgentStore
from stores.phone_numbers import PhoneNumberStore
from stores.prompts import PromptStore
from stores.scheduled_call_runs import Claim, ScheduledCallRuns
from stores.scheduled_calls import ScheduledCall
from voice_server.log import get_logger
from voice_server.metrics import OUTBOUND_DIAL_DELAY, OUTBOUND_DIALS
from voice_server.settings import Settings
from voice_server.twilio_api.calls import CallNotPlaced, CallUrls, place_call, recent_call
from voice_server.twilio_api.rest import Credentials, SendFailed, TwilioRest, number_credentials

log = get_logger(__name__)

ABANDONED = "the server dialling it stopped before Twilio answered; not dialled again"


@dataclass(frozen=True)
class Caller:
    """The number a call is placed from, and its Twilio account's credentials."""

    number: str
    credentials: Credentials


class CannotPlace(Exception):
    """The scheduled call as a whole cannot be placed; the message says why."""


@dataclass(frozen=True)
class Dialling:
    """What placing calls needs: the stores, Twilio, the settings, and the retry policy."""

    runs: ScheduledCallRuns
    numbers: PhoneNumberStore
    prompts: PromptStore
    agents: AgentStore
    twilio: TwilioRest
    settings: Settings
    attempts: int = 4
    backoff_s: float = 0.5


async def place(dialling: Dialling, claim: Claim, call: ScheduledCall) -> None:
    """Dial every destination of `call` not yet dialled, then let its outcomes settle it."""
    try:
        caller = await _checked(dialling, call)
    except CannotPlace as problem:
        log.warning("scheduled call not placed", reason=str(problem))
        OUTBOUND_DIALS.labels(result="never-dialled").inc(len(call.toPhoneNumbers))
        await dialling.runs.fail(claim, str(problem))
        return
    lease = timedelta(seconds=dialling.settings.scheduler_lease_seconds)
    renewed = datetime.now(UTC)  # the claim's lease was taken just now
    for index, destination in enumerate(call.destinations):
        if destination.state == "dialling":  # left so by a worker that died mid-request
            log.warning("destination abandoned mid-dial", to=destination.to)
            await dialling.runs.not_dialled(claim, index, ABANDONED, destination.attempts)
        if destination.state != "waiting":
            continue
        if datetime.now(UTC) - renewed > lease / 4:
            renewed = datetime.now(UTC)
            if not await dialling.runs.renew(claim, renewed + lease):
                log.warning("scheduled call claim lost; stopping")
                return
        if await dialling.runs.dialling(claim, index):
            await _dial(dialling, claim, index, caller, destination.to)
            delay = datetime.now(UTC) - call.scheduledDateTime
            OUTBOUND_DIAL_DELAY.observe(delay.total_seconds())
    await dialling.runs.release(claim)


async def _checked(dialling: Dialling, call: ScheduledCall) -> Caller:
    """The call's number and its credentials; CannotPlace if the call cannot be placed."""
    settings = dialling.settings
    if call.callType == "normal" and call.message is None:
        raise CannotPlace("a normal call needs a message to say, and this one has none")
    if call.callType == "ai" and not call.promptContent:
        raise CannotPlace("an ai call needs its prompt's text, and this one has none")
    number = await dialling.numbers.get(call.userId, call.fromPhoneNumberId)
    if number is None:
        raise CannotPlace("the from number was deleted, or is not the owner's")
    if not number.isActive:
        raise CannotPlace(f"the from number {number.phoneNumber} is inactive")
    if call.promptId is not None and await dialling.prompts.get(call.userId, call.promptId) is None:
        raise CannotPlace("the prompt was deleted, or is not the owner's")
    if await dialling.agents.find_for_outbound_call(call.userId, number.phoneNumber) is None:
        raise CannotPlace(f"no active agent on {number.phoneNumber} to speak with")
    if len(call.toPhoneNumbers) > settings.scheduled_call_max_destinations:
        raise CannotPlace(
            f"{len(call.toPhoneNumbers)} numbers to call; at most "
            f"{settings.scheduled_call_max_destinations} (SCHEDULED_CALL_MAX_DESTINATIONS)"
        )
    late = (datetime.now(UTC) - call.scheduledDateTime).total_seconds()
    undialled = all(d.state == "waiting" for d in call.destinations)
    limit = settings.scheduled_call_max_lateness_seconds
    if undialled and late > limit:
        raise CannotPlace(
            f"due {call.scheduledDateTime.isoformat()}, {late:.0f} s ago: later than "
            f"SCHEDULED_CALL_MAX_LATENESS_SECONDS ({limit:g})"
        )
    try:
        return Caller(number.phoneNumber, number_credentials(dialling.numbers, number))
    except SendFailed as error:
        raise CannotPlace(f"the from number's auth token cannot be opened: {error}") from None


async def _dial(dialling: Dialling, claim: Claim, index: int, caller: Caller, to: str) -> None:
    """Dial one destination, retrying what may pass; record its SID or why it failed."""
    urls = CallUrls.of(dialling.settings.base_url, claim.call_id, index)
    retrying = AsyncRetrying(
        retry=retry_if_exception(
            lambda error: isinstance(error, CallNotPlaced) and error.retryable
        ),
        wait=wait_exponential(multiplier=dialling.backoff_s, max=30 * dialling.backoff_s),
        stop=stop_after_attempt(dialling.attempts),
        before_sleep=lambda state: log.warning(
            "Twilio did not place the call; retrying",
            to=to,
            attempt=state.attempt_number,
            error=str(state.outcome.exception()) if state.outcome else None,
        ),
        reraise=True,
    )
    attempt, started, unanswered = 0, datetime.now(UTC), False
    try:
        async for try_ in retrying:
            with try_:
                attempt = try_.retry_state.attempt_number
                # After a request that got no answer, Twilio may have placed the call: ask
                # before asking again, so the number never rings twice.
                if unanswered and (sid := await _placed_anyway(dialling, caller, to, started)):
                    break
                try:
                    sid = await place_call(
                        dialling.twilio, caller.credentials, from_=caller.number, to=to, urls=urls
                    )
                except CallNotPlaced as error:
                    unanswered = unanswered or error.maybe_placed
                    raise
    except CallNotPlaced as error:
        log.warning("destination not dialled", to=to, error=str(error), attempts=attempt)
        OUTBOUND_DIALS.labels(result="not-dialled").inc()
        await dialling.runs.not_dialled(claim, index, str(error), attempt)
        return
    log.info("destination dialled", to=to, call_sid=sid, attempts=attempt)
    OUTBOUND_DIALS.labels(result="dialled").inc()
    await dialling.runs.dialled(claim, index, sid, attempt)


async def _placed_anyway(dialling: Dialling, caller: Caller, to: str, since: datetime) -> str:
    """The SID of the call Twilio placed after all (or "" if it did not)."""
    sid = await recent_call(
        dialling.twilio, caller.credentials, from_=caller.number, to=to, since=since
    )
    if sid:
        log.warning("Twilio placed the call although it did not answer in time", call_sid=sid)
    return sid or ""
