"""A database outage when a call falls due delays the call; it does not lose it or the worker."""

from __future__ import annotations

import asyncio

import pytest

from tests.database_outage import DatabaseOutage
from tests.voice_server.conftest import logged
from tests.voice_server.scheduling.line import calling_line, later, workers
from voice_server.settings import Settings
from voice_server.simulation.callees import Callee
from voice_server.simulation.twilio_standin import TwilioStandin


@pytest.mark.parametrize("outage", ["stopped"], indirect=True)
async def test_a_call_due_during_an_outage_rings_once_the_database_is_back(
    outage: DatabaseOutage, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    standin = TwilioStandin(default_callee=Callee(kind="busy", ring_s=0.1))
    async with calling_line(outage.db, settings, worker=False, standin=standin) as line:
        await line.schedule(scheduledDateTime=later(1.0))
        async with workers(line):
            await outage.begin()
            async with asyncio.timeout(30):  # the worker woke at the due time and failed
                while not logged(caplog, "scheduled calls could not be read; retrying"):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            assert line.standin.creates == []
            await outage.end()
            (create,) = await line.standin.wait_for_creates(1, answered=True, timeout_s=30)

    assert create.get("To") == "+15550100300"
