"""Placing and steering calls through Twilio's REST API (`Calls.json`).

Every outbound call asks for asynchronous answering-machine detection that waits for the beep
(`DetectMessageEnd`): the callee hears the agent at once, and the detection's verdict arrives
later at its own callback, just after a machine's beep, which is when a message must start.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
from twilio.base.exceptions import TwilioRestException

from stores.scheduled_calls import Outcome
from voice_server.twilio_api.rest import Credentials, TwilioRest

MACHINE_DETECTION_TIMEOUT_S = 30


class CallNotPlaced(Exception):
    """Twilio did not place the call. `retryable`: asking again later may work (a rate limit,
    Twilio's own error, the network); otherwise the request itself is wrong (the number).
    `maybe_placed`: no answer came in time, so Twilio may have placed it all the same."""

    def __init__(
        self, message: str, *, retryable: bool, code: int | None = None, maybe_placed: bool = False
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code
        self.maybe_placed = maybe_placed


# What a call's terminal status means for the destination it was placed to (an answering
# machine found by detection is a voicemail, whatever the status then says).
OUTCOME_OF_STATUS: dict[str, Outcome] = {
    "completed": "answered",
    "busy": "busy",
    "no-answer": "no-answer",
    "failed": "failed",
    "canceled": "failed",
}

ANSWER_PATH = "/twilio/outbound"
MACHINE_PATH = "/twilio/machine"
STATUS_PATH = "/twilio/status"


@dataclass(frozen=True)
class CallUrls:
    """Where Twilio asks for the answered call's TwiML, and reports its status and AMD."""

    answer: str
    status: str
    machine: str

    @classmethod
    def of(cls, base_url: str, scheduled_call_id: str, destination: int) -> CallUrls:
        """The URLs for one destination of a scheduled call, named in their query: Twilio's
        callbacks may come before its call's SID is stored."""
        query = f"?scheduled={scheduled_call_id}&destination={destination}"
        return cls(
            answer=f"{base_url}{ANSWER_PATH}{query}",
            status=f"{base_url}{STATUS_PATH}{query}",
            machine=f"{base_url}{MACHINE_PATH}{query}",
        )


async def place_call(
    twilio: TwilioRest, credentials: Credentials, *, from_: str, to: str, urls: CallUrls
) -> str:
    """Ask Twilio to call `to` from `from_`; the new call's SID. Raises CallNotPlaced."""
    client = twilio.client(credentials)
    with _refusals("Twilio refused the call"):
        call = await client.calls.create_async(
            to=to,
            from_=from_,
            url=urls.answer,
            status_callback=urls.status,  # Twilio's default: once, when the call has ended
            machine_detection="DetectMessageEnd",
            machine_detection_timeout=MACHINE_DETECTION_TIMEOUT_S,
            async_amd="true",
            async_amd_status_callback=urls.machine,
        )
    return str(call.sid)


async def recent_call(
    twilio: TwilioRest, credentials: Credentials, *, from_: str, to: str, since: datetime
) -> str | None:
    """The SID of a call Twilio created from `from_` to `to` at `since` or later, if any: after
    a request that got no answer, whether Twilio placed the call all the same."""
    client = twilio.client(credentials)
    with _refusals("Twilio refused to list the calls"):
        calls = await client.calls.list_async(to=to, from_=from_, limit=20)
    slack = timedelta(seconds=2)  # Twilio's timestamps are to the second
    for call in calls:
        if call.date_created is not None and call.date_created >= since - slack:
            return str(call.sid)
    return None


async def redirect_call(
    twilio: TwilioRest, credentials: Credentials, call_sid: str, url: str
) -> None:
    """Send a live call to new TwiML at `url` (its media stream stops). Raises CallNotPlaced."""
    await _update(twilio, credentials, call_sid, url=url, method="POST")


async def hang_up(twilio: TwilioRest, credentials: Credentials, call_sid: str) -> None:
    """End a live call. Raises CallNotPlaced."""
    await _update(twilio, credentials, call_sid, status="completed")


@dataclass(frozen=True)
class CallState:
    """A call as Twilio's REST API reports it."""

    status: str  # queued, ringing, in-progress, completed, busy, failed, no-answer, canceled
    answered_by: str | None


async def call_state(twilio: TwilioRest, credentials: Credentials, call_sid: str) -> CallState:
    """The call's status now. Raises CallNotPlaced."""
    client = twilio.client(credentials)
    with _refusals("Twilio refused to tell the call's status"):
        call = await client.calls(call_sid).fetch_async()
    answered_by = None if call.answered_by is None else str(call.answered_by)
    return CallState(status=str(call.status), answered_by=answered_by)


async def _update(
    twilio: TwilioRest, credentials: Credentials, call_sid: str, **change: str
) -> None:
    client = twilio.client(credentials)
    with _refusals("Twilio refused to change the call"):
        await client.calls(call_sid).update_async(**change)


@contextmanager
def _refusals(what: str) -> Iterator[None]:
    """Twilio's errors as CallNotPlaced: a rate limit, a 5xx or the network may pass."""
    try:
        yield
    except TwilioRestException as error:
        retryable = error.status == 429 or error.status >= 500
        raise CallNotPlaced(f"{what}: {error.msg}", retryable=retryable, code=error.code) from error
    except TimeoutError as error:
        raise CallNotPlaced(
            "Twilio did not answer in time", retryable=True, maybe_placed=True
        ) from error
    except aiohttp.ClientError as error:
        raise CallNotPlaced(f"Twilio could not be reached: {error!r}", retryable=True) from error
