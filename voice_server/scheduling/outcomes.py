"""Outcomes whose status callback never came, asked of Twilio's REST API.

Twilio reports a call's end once, to its status callback; if no server took it (all were down,
or the network failed), the destination would stay `dialled` and its scheduled call
`in-progress` for ever. So every worker looks now and then for destinations dialled longer
ago than `SCHEDULED_CALL_OUTCOME_WAIT_SECONDS` with no outcome, and asks Twilio how each call
went (`calls(sid).fetch`). A call still running is left for the next look.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stores.scheduled_call_runs import Placed
from stores.scheduled_calls import Outcome, ScheduledCall
from voice_server.log import get_logger
from voice_server.scheduling.placing import Dialling
from voice_server.twilio_api.calls import (
    OUTCOME_OF_STATUS,
    CallNotPlaced,
    CallState,
    call_state,
)
from voice_server.twilio_api.rest import SendFailed, number_credentials

log = get_logger(__name__)


def _outcome(state: CallState) -> Outcome | None:
    if (state.answered_by or "").startswith(("machine", "fax")):
        return "voicemail"
    return OUTCOME_OF_STATUS.get(state.status)  # None while the call is not over


async def recover_outcomes(dialling: Dialling) -> int:
    """Ask Twilio for the outcomes that are overdue; how many were recorded."""
    wait = timedelta(seconds=dialling.settings.scheduled_call_outcome_wait_seconds)
    recovered = 0
    for call in await dialling.runs.awaiting_outcomes(datetime.now(UTC) - wait):
        recovered += await _recover(dialling, call, datetime.now(UTC) - wait)
    return recovered


async def _recover(dialling: Dialling, call: ScheduledCall, dialled_before: datetime) -> int:
    number = await dialling.numbers.get(call.userId, call.fromPhoneNumberId)
    if number is None:
        log.warning(
            "overdue outcome cannot be asked: the number is gone", scheduled_call_id=call.id
        )
        return 0
    recovered = 0
    for index, destination in enumerate(call.destinations):
        overdue = destination.dialledAt is not None and destination.dialledAt < dialled_before
        if destination.state != "dialled" or destination.callSid is None or not overdue:
            continue
        try:
            credentials = number_credentials(dialling.numbers, number)
            state = await call_state(dialling.twilio, credentials, destination.callSid)
        except (CallNotPlaced, SendFailed) as error:
            log.warning(
                "overdue outcome not known yet", call_sid=destination.callSid, error=str(error)
            )
            continue
        if (outcome := _outcome(state)) is None:
            continue
        placed = Placed(call.id, index, destination.callSid)
        if await dialling.runs.outcome(placed, outcome):
            log.warning(
                "outcome taken from Twilio: its status callback never came",
                call_sid=destination.callSid,
                outcome=outcome,
                scheduled_call_id=call.id,
            )
            recovered += 1
    return recovered
