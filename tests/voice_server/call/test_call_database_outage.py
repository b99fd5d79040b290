"""A call through a database outage, against the real server and a SecantusDB of its own: the
database goes away as the caller starts talking and comes back only after the hang-up. The
caller is answered all along, and every transcript entry is stored once, in order, before the
call is finalised."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from stores.calls import CallStore
from tests.database_outage import DatabaseOutage
from tests.voice_server.call.scripted import ScriptedLanguageModel
from tests.voice_server.call.test_turn_taking import calling
from tests.voice_server.conftest import logged
from voice_server.settings import Settings
from voice_server.simulation.caller_script import CallerScript, HangUp, Say
from voice_server.simulation.scripted_calls import Conversation
from voice_server.simulation.simulator import place_call

FIRST, SECOND = "What are your opening hours?", "Can I book a table for two?"
# Short lines keep the call short; the outage spans both turns all the same.
GREETING, ANSWERS = "Hello.", ("Nine to five.", "Yes, you can.")
# The session never waits on the database: an answer as quick as without an outage (our
# stand-ins answer in well under a second; the database's own timeouts are 2 s and more).
QUICK_ANSWER_MS = 2000


async def test_a_call_talks_through_an_outage_and_its_transcript_is_stored_once_in_order(
    outage: DatabaseOutage, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    conversation = Conversation(CallerScript(steps=(Say(FIRST), Say(SECOND), HangUp())))
    talking, hung_up = asyncio.Event(), asyncio.Event()

    def follow(event: str) -> None:
        if event == f"caller says: {FIRST}":
            talking.set()
        elif event == "caller hangs up":
            hung_up.set()

    llm = ScriptedLanguageModel(*ANSWERS)
    async with calling(outage.db, settings, conversation, llm) as line:
        await outage.db["agents"].update_one({}, {"$set": {"greeting": GREETING}})
        async with asyncio.TaskGroup() as tasks:
            call = tasks.create_task(place_call(line, conversation.script, on_event=follow))
            await talking.wait()
            await outage.begin()
            down_since = datetime.now(UTC)
            await hung_up.wait()
            down_until = datetime.now(UTC)
            await outage.end()
            back_at = datetime.now(UTC)
    result = call.result()

    latencies = [turn.reply_latency_ms for turn in result.turns]
    assert len(latencies) == 2
    assert all(ms is not None and ms < QUICK_ANSWER_MS for ms in latencies), latencies
    stored = await CallStore(outage.db).get(result.call_sid)
    assert stored is not None
    assert [entry.text for entry in stored.transcript] == [
        GREETING,
        FIRST,
        ANSWERS[0],
        SECOND,
        ANSWERS[1],
    ]
    said_while_down = [e.text for e in stored.transcript if down_since < e.timestamp < down_until]
    assert SECOND in said_while_down
    assert len({entry.entry_id for entry in stored.transcript}) == len(stored.transcript)
    assert (stored.status, stored.end_reason) == ("completed", "caller-hung-up")
    assert stored.end_time is not None
    if outage.kind == "stopped":  # back only after a restart, well after the hang-up arrived
        assert stored.end_time < back_at, "the call ended at the hang-up, not when stored"
    assert not logged(caplog, "could not be stored")
