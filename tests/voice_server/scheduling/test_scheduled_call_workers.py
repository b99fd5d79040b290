"""Scheduled-call workers: each destination dialled once however many workers race, a dead
worker's call taken over without a second dial, retries and their limit, and every bad input
failing before anything is dialled. Callees are busy lines: no media, only the dialling."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stores.agents import AgentStore, AgentUpdate
from stores.phone_numbers import PhoneNumberStore, PhoneNumberUpdate
from stores.prompts import PromptStore
from stores.scheduled_call_runs import Claim, Placed, ScheduledCallRuns
from stores.secrets import SecretBox
from tests.voice_server.conftest import logged
from tests.voice_server.scheduling.line import Db, Line, calling_line, settled, workers
from voice_server.security.secret_key import secret_box
from voice_server.seed import DEMO_USER
from voice_server.settings import Settings
from voice_server.simulation.callees import Callee
from voice_server.simulation.twilio_standin import ApiFault, TwilioStandin

BUSY = Callee(kind="busy", ring_s=0.1)


def busy_line() -> TwilioStandin:
    return TwilioStandin(default_callee=BUSY)


async def test_three_workers_racing_dial_each_destination_once(
    database: Db, settings: Settings
) -> None:
    async with calling_line(database, settings, worker=False, standin=busy_line()) as line:
        numbers = [[f"+1555010{n:04d}", f"+1555020{n:04d}"] for n in range(12)]
        scheduled = [await line.schedule(toPhoneNumbers=pair) for pair in numbers]
        async with workers(line, count=3):
            await line.standin.wait_for_creates(24, answered=True)
            done = [await settled(line, call.id) for call in scheduled]

    dialled = Counter(create.get("To") for create in line.standin.creates)
    assert dialled == Counter(number for pair in numbers for number in pair)
    assert max(dialled.values()) == 1
    assert {call.status for call in done} == {"failed"}, "nobody answered a busy line"
    assert {d.outcome for call in done for d in call.destinations} == {"busy"}


async def test_a_dead_workers_call_is_taken_over_without_a_second_dial(
    database: Db, settings: Settings
) -> None:
    async with calling_line(database, settings, worker=False, standin=busy_line()) as line:
        call = await line.schedule(toPhoneNumbers=["+15550100301", "+15550100302", "+15550100303"])
        # A worker claimed it with a lease that has run out, dialled the first number, and died
        # while Twilio was being asked for the second.
        runs = ScheduledCallRuns(database)
        assert await runs.claim_due(datetime.now(UTC), "dead", timedelta(0)) is not None
        dead = Claim(call.id, "dead")
        assert await runs.dialling(dead, 0)
        assert await runs.dialled(dead, 0, "CA" + "d" * 32, attempts=1)
        assert await runs.dialling(dead, 1)
        async with workers(line):
            await line.standin.wait_for_creates(1, answered=True)
            # The first call's own status callback.
            assert await runs.outcome(Placed(call.id, 0, "CA" + "d" * 32), "answered")
            done = await settled(line, call.id)

    assert [create.get("To") for create in line.standin.creates] == ["+15550100303"]
    assert [(d.state, d.outcome) for d in done.destinations] == [
        ("done", "answered"),
        ("done", "failed"),
        ("done", "busy"),
    ]
    assert "not dialled again" in (done.destinations[1].error or "")
    assert done.status == "completed"


async def test_transient_refusals_are_retried_a_bounded_number_of_times(
    database: Db, settings: Settings
) -> None:
    standin = TwilioStandin(default_callee=BUSY)
    standin.fail_number("+15550100301", ApiFault(429), ApiFault(503))
    standin.fail_number("+15550100302", *[ApiFault(500)] * 4)
    standin.callees["+15550100303"] = Callee(kind="failed", ring_s=0.1)
    async with calling_line(database, settings, worker=False, standin=standin) as line:
        call = await line.schedule(toPhoneNumbers=["+15550100301", "+15550100302", "+15550100303"])
        async with workers(line, attempts=4, backoff_s=0.01):
            done = await settled(line, call.id)

    tries = Counter(create.get("To") for create in line.standin.creates)
    assert tries == {"+15550100301": 3, "+15550100302": 4, "+15550100303": 1}
    first, second, third = done.destinations
    assert (first.attempts, first.outcome) == (3, "busy")
    assert (second.attempts, second.outcome, second.state) == (4, "failed", "done")
    assert second.callSid is None
    assert "Twilio refused the call" in (second.error or "")
    assert (third.outcome, third.attempts) == ("failed", 1), "that number failed, not the call"


def numbers(line: Line) -> PhoneNumberStore:
    return PhoneNumberStore(line.db, secret_box(line.settings))


async def test_a_request_twilio_answered_too_late_is_not_dialled_again(
    database: Db, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    standin = TwilioStandin(default_callee=BUSY)
    standin.fail_number("+15550100301", ApiFault(status=None, delay_s=1.0))  # placed, late
    async with calling_line(database, settings, worker=False, standin=standin) as line:
        call = await line.schedule(toPhoneNumbers=["+15550100301"])
        async with workers(line, twilio_timeout_s=0.3, backoff_s=0.01):
            done = await settled(line, call.id)

    (create,) = line.standin.creates  # asked once; the retry found the call instead
    assert done.destinations[0].callSid == create.call_sid
    assert done.destinations[0].outcome == "busy"
    assert logged(caplog, "Twilio placed the call although it did not answer in time")


async def _deleted_number(line: Line) -> None:
    await numbers(line).delete(DEMO_USER, line.number_id)


async def _deleted_prompt(line: Line) -> None:
    await PromptStore(line.db).delete(DEMO_USER, line.prompt_id)


async def _inactive_number(line: Line) -> None:
    await numbers(line).update(DEMO_USER, line.number_id, PhoneNumberUpdate(isActive=False))


async def _agent_switched_off(line: Line) -> None:
    await AgentStore(line.db).update(DEMO_USER, line.demo.agent_id, AgentUpdate(active=False))


async def _token_sealed_elsewhere(line: Line) -> None:
    other = PhoneNumberStore(line.db, SecretBox(SecretBox.generate_key()))
    await other.update(DEMO_USER, line.number_id, PhoneNumberUpdate(twilioAuthToken="t" * 32))


Spoil = Callable[[Line], Awaitable[None]]
BAD_INPUTS: dict[str, tuple[Spoil | None, dict[str, Any], str]] = {
    "number deleted": (_deleted_number, {}, "the from number was deleted"),
    "prompt deleted": (_deleted_prompt, {}, "the prompt was deleted"),
    "number inactive": (_inactive_number, {}, "is inactive"),
    "no agent": (_agent_switched_off, {}, "no active agent"),
    "token unreadable": (_token_sealed_elsewhere, {}, "auth token cannot be opened"),
    "another user's": (None, {"userId": "mallory"}, "not the owner's"),
    "far in the past": (
        None,
        {"scheduledDateTime": datetime.now(UTC) - timedelta(days=2)},
        "SCHEDULED_CALL_MAX_LATENESS_SECONDS",
    ),
    "too many numbers": (
        None,
        {"toPhoneNumbers": [f"+155501003{n:02d}" for n in range(51)]},
        "at most 50",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
async def test_a_call_that_cannot_be_placed_fails_saying_why_and_dials_no_one(
    database: Db, settings: Settings, case: str
) -> None:
    spoil, fields, reason = BAD_INPUTS[case]
    async with calling_line(database, settings, worker=False, standin=busy_line()) as line:
        call = await line.schedule(**fields)
        if spoil is not None:
            await spoil(line)
        async with workers(line):
            done = await settled(line, call.id)

    assert line.standin.creates == []
    assert done.status == "failed"
    assert reason in (done.error or "")
    assert {(d.outcome, d.error) for d in done.destinations} == {("failed", done.error)}
